"""A criterion a user writes (one class) runs through the sweep and `tfprune.prune`.

The weight-level criterion below is the one of docs/criteria.md: it ranks a
weight by |w| relative to the norm of its output unit's weights, so unlike
`weight` it prunes every unit about equally. The channel-level one ranks a
dependency group's channels by the mean |w| of their producing filters.
"""

import numpy as np
import pytest

import tfprune
from tests import helpers
from tests import keras_zoo
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.drivers import graph_sweep
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator


class RelativeMagnitude(tfprune.WeightImportance):
  """|w| divided by the L2 norm of its output unit's weights."""
  name = 'relative'
  summary = '|w| / ||w of its unit||'

  def __call__(self, kernel, seed=0):
    units = np.abs(kernel).reshape(-1, kernel.shape[-1])
    norms = np.sqrt((units ** 2).sum(axis=0)) + 1e-12
    return (units / norms).reshape(kernel.shape)


class MeanFilter(tfprune.ChannelImportance):
  """Mean |w| of each channel's producing filters."""
  name = 'mean_filter'

  def __call__(self, graph, group):
    total = np.zeros(group.size)
    for s in group.slices:
      if s.role == 'producer' and s.param == 'kernel':
        rows = importances.channel_rows(graph, s)
        total += np.abs(rows).mean(axis=(1, 2))
    return total


def _check_relative(kernel, pruned_kernel, k):
  scores = RelativeMagnitude()(kernel)
  kept = pruned_kernel != 0
  assert kernel.size - np.count_nonzero(kept) == pruning.prune_count(k, kernel.size)
  assert scores[kept].min() >= scores[~kept].max()


def test_weight_criterion_through_the_sweep_on_the_mlp(tmp_path, mnist_slice_dir):
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=str(helpers.PREBUILT), out_dir=str(tmp_path / 'out'),
      data_dir=mnist_slice_dir, methods=(RelativeMagnitude(), 'weight'),
      levels=(0, 90)))
  assert [(r.method, r.k) for r in rows] == [('relative', 0), ('relative', 90),
                                             ('weight', 0), ('weight', 90)]
  assert rows[1].sparsity == pytest.approx(0.9, abs=1e-6)
  assert rows[1].accuracy != rows[3].accuracy  # not the magnitude criterion
  graph = tfprune.load(helpers.PREBUILT)
  by_api = tfprune.prune(graph, RelativeMagnitude(), 90)
  for name in ('layer_1', 'layer_2', 'layer_3', 'layer_4'):
    _check_relative(graph.node(name).params['kernel'],
                    by_api.node(name).params['kernel'], 90)
  assert '"relative"' in (tmp_path / 'out' / 'sweep_config.json').read_text()


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_both_kinds_through_the_sweep_on_a_keras_cnn(tmp_path, framework):
  keras_zoo.build('residual', framework).save(tmp_path / 'm.keras')
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'd.npz',
           x_test=rng.standard_normal((64, 10, 10, 3)).astype(np.float32),
           y_test=rng.integers(0, 3, 64))
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=None, model_file=str(tmp_path / 'm.keras'),
      data=str(tmp_path / 'd.npz'), out_dir=str(tmp_path / 'out'),
      methods=(RelativeMagnitude(), MeanFilter()), levels=(50,),
      save_keras=True))
  relative, mean_filter = rows
  assert relative.sparsity == pytest.approx(0.5, abs=0.01)
  # The channel criterion removes channels: its row counts the smaller model.
  assert mean_filter.nonzero_params < relative.nonzero_params
  graph = tfprune.from_keras(tmp_path / 'm.keras')
  masked = tfprune.prune(graph, MeanFilter(), 50)
  small = tfprune.compact(masked)
  x = rng.standard_normal((8, 10, 10, 3)).astype(np.float32)
  np.testing.assert_allclose(evaluator.predict(small, x),
                             evaluator.predict(masked, x), rtol=1e-5, atol=1e-6)
  assert graph_sweep.nonzero_params(small) == mean_filter.nonzero_params


def test_register_makes_a_name_and_refuses_a_taken_one():
  criterion = RelativeMagnitude()
  criterion.name = 'relative_registered'
  try:
    assert tfprune.register(criterion) is criterion
    assert 'relative_registered' in tfprune.criterion_names()
    sweep.SweepConfig('w', 'o', methods=('relative_registered',))
    with pytest.raises(TfpruneError, match="criterion name 'weight' is empty or taken"):
      tfprune.register(type('Twin', (RelativeMagnitude,), {'name': 'weight'})())
  finally:
    importances.REGISTRY.pop('relative_registered', None)
  with pytest.raises(TfpruneError, match='is not a criterion'):
    tfprune.prune(tfprune.load(helpers.PREBUILT), 42, 50)
