"""Study B's TF-MOT prune-finetune cycles: exact counts, shrinking masks, timing script.

The cycles run on an untrained LeNet-5 with non-zero biases (so a pruned unit
whose bias were not held at zero would output a constant) and 256 random
images; only the pruning machinery is under test, not accuracy.
"""

import functools
import json
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from tests import helpers
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io import trace
from experiments.studies import lenet_config
from experiments.studies import lenet_cycles
from tfprune.training import finetune
from tfprune.training import gradual
from tfprune.training import schedules
from tfprune.training import tfmot_masks

PRUNED = [0, 1, 2, 3]  # conv_1, conv_2, dense_1, dense_2; not the output layer
K = 45.0
CONFIG = lenet_config.StudyBConfig('', '', cycles=2, finetune_epochs=1)


def _lenet():
  keras.utils.set_random_seed(0)
  model = models.get('lenet5')((28, 28, 1), 10)
  rng = np.random.default_rng(0)
  for layer in finetune.prunable(model):
    layer.bias.assign(0.1 + 0.1 * rng.random(layer.bias.shape[0]))
  return model


@functools.lru_cache(maxsize=None)
def _run(method):
  """prune_finetune to K in 2 cycles; what each cycle left, as numpy arrays."""
  seen = []
  original = lenet_cycles.tfmot_cycle
  images = helpers.tiny_split(64, seed=1).images

  def record(*args, **kwargs):
    cycle = original(*args, **kwargs)
    seen.append({'masks': [None if m is None else m.copy() for m in cycle.masks],
                 'wrapped': cycle.wrapped.predict(images, verbose=0),
                 'stripped': cycle.model.predict(images, verbose=0),
                 'layers': cycle.layers})
    return cycle

  with mock.patch.object(lenet_cycles, 'tfmot_cycle', record):
    model = lenet_cycles.prune_finetune(_lenet(), method, K, PRUNED,
                                       helpers.tiny_split(256), CONFIG)
  return finetune.kernels(model), [l.bias.numpy() for l in
                                   finetune.prunable(model)], seen


def _required_zeros(method, kernel):
  if method == 'l1':
    return schedules.tfmot_pruned_count(kernel.size, K / 100)
  if method == 'random':
    return pruning.prune_count(K, kernel.size)
  units = kernel.shape[-1]
  return pruning.prune_count(K, units) * (kernel.size // units)


@pytest.mark.parametrize('method', list(lenet_config.ARMS))
def test_prune_finetune_leaves_exact_zero_counts(method):
  kernels, _, _ = _run(method)
  zeros = [int(np.sum(k == 0)) for k in kernels]
  assert zeros[:4] == [_required_zeros(method, k) for k in kernels[:4]]
  assert zeros[4] == 0  # the output layer is not pruned


def test_l1_counts_are_tfmot_rounding_not_floor():
  # 45% of conv_1's 150 weights: TF-MOT keeps round(150 * 0.55) = 82 in
  # float32, so prunes 68; floor(0.45 * 150) would be 67.
  kernels, _, _ = _run('l1')
  assert int(np.sum(kernels[0] == 0)) == 68
  assert pruning.prune_count(K, 150) == 67


@pytest.mark.parametrize('method', list(lenet_config.ARMS))
def test_masks_only_shrink_across_cycles(method):
  _, _, (first, second) = _run(method)
  for i in PRUNED:
    before, after = first['masks'][i], second['masks'][i]
    assert not np.any(after & ~before)
    assert np.sum(~after) > np.sum(~before) > 0
  assert [l.zeros for l in first['layers']] == [l.required for l in first['layers']]


@pytest.mark.parametrize('method', list(lenet_config.ARMS))
def test_stripped_model_predicts_exactly_like_the_wrapped_one(method):
  for cycle in _run(method)[2]:
    np.testing.assert_array_equal(cycle['stripped'], cycle['wrapped'])


def test_structured_pruned_units_have_zero_biases():
  kernels, biases, _ = _run('structured_l1')
  for kernel, bias in zip(kernels[:4], biases[:4]):
    pruned = ~np.any(kernel.reshape(-1, kernel.shape[-1]) != 0, axis=0)
    assert pruned.sum() == pruning.prune_count(K, kernel.shape[-1])
    assert np.all(bias[pruned] == 0)
    assert np.all(bias[~pruned] != 0)


def _wrapped_classifier(mask):
  keras.utils.set_random_seed(0)
  wrapped = gradual.wrap(helpers.tiny_classifier(), ['dense_1'],
                         schedules.FixedMask())
  tfmot_masks.inject(wrapped, ['dense_1'], [mask])
  return wrapped


class _Sabotage(keras.callbacks.Callback):
  """Writes 1000 into the pruned kernel entries before every training batch."""

  def __init__(self, kernel, mask):
    super().__init__()
    self.kernel, self.mask = kernel, mask

  def on_train_batch_begin(self, batch, logs=None):
    self.kernel.assign(
        np.where(self.mask, self.kernel.numpy(), 1000.0).astype(np.float32))


def test_fixed_mask_wrapper_masks_every_training_step():
  # If the wrapper did not multiply by its mask inside every step, the
  # sabotaged weights would enter the forward pass and change the losses.
  mask = np.random.default_rng(0).random((784, 16)) < 0.5
  split = helpers.tiny_split(64)
  runs = []
  for sabotage in (False, True):
    wrapped = _wrapped_classifier(mask)
    kernel = tfmot_masks.wrappers(wrapped, ['dense_1'])[0].layer.kernel
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if sabotage:
      callbacks.append(_Sabotage(kernel, mask))
    keras.utils.set_random_seed(0)
    finetune.fit(wrapped, split.images, split.labels,
                 finetune.FitConfig(2, batch_size=16, learning_rate=1e-2),
                 callbacks)
    runs.append((wrapped.history.history['loss'], kernel.numpy(),
                 tfmot_masks.read(wrapped, ['dense_1'])[0]))
  (loss, kernel, held), (sabotaged_loss, sabotaged_kernel, _) = runs
  assert loss == sabotaged_loss
  np.testing.assert_array_equal(kernel, sabotaged_kernel)
  np.testing.assert_array_equal(held, mask)
  assert np.array_equal(kernel != 0, mask)


def test_schedules_of_the_cycles():
  once = schedules.first_step(0.3)
  assert [bool(once(s)[0]) for s in range(5)] == [False, True, False, False, False]
  assert float(once(1)[1]) == pytest.approx(0.3)
  assert not any(bool(schedules.FixedMask()(s)[0]) for s in range(5))


def test_check_cycle_fails_loudly_on_a_wrong_count_or_a_revived_weight():
  model = _lenet()
  cycle = lenet_cycles.tfmot_cycle(model, 'l1', 30, PRUNED, None,
                                  helpers.tiny_split(128), CONFIG)
  with pytest.raises(TfpruneError, match=r'layer conv_1: l1 at k=40% asks for 60 '
                     r'zero weights of 150, the kernel has 45'):
    lenet_cycles.check_cycle(cycle.model, 'l1', 40, PRUNED, None, cycle.masks, None)
  earlier = [None if m is None else m.copy() for m in cycle.masks]
  earlier[2][tuple(np.argwhere(cycle.masks[2])[0])] = False
  with pytest.raises(TfpruneError, match='layer dense_1: the l1 cycle at k=30% '
                     'revived 1 weights'):
    lenet_cycles.check_cycle(cycle.model, 'l1', 30, [2], earlier, cycle.masks, None)


def test_config_refuses_l1_at_100_and_no_finetuning():
  with pytest.raises(TfpruneError, match='l1 at k=100'):
    lenet_config.StudyBConfig('', '', methods=('l1',), levels=(100,))
  with pytest.raises(TfpruneError, match='finetune_epochs must be at least 1'):
    lenet_config.StudyBConfig('', '', finetune_epochs=0)


def _compact_macs(k):
  """LeNet-5 multiply-adds once floor(k·m/100) units of each pruned layer go."""
  c1, c2, f1, f2 = (m - pruning.prune_count(k, m) for m in (6, 16, 120, 84))
  return (28 * 28 * 25 * c1 + 10 * 10 * 25 * c1 * c2 + 25 * c2 * f1 + f1 * f2
          + f2 * 10)


def test_timing_only_script_writes_one_row_per_level(tmp_path, mnist_slice_dir,
                                                    capsys):
  # 1,000 test images (the shared slice): the rows, their FLOPs ratios and
  # the file do not depend on how many images each timed pass covers.
  folder = tmp_path / 'lenet5'
  weights.save(folder, trace.trace(_lenet()).graph, {'model': 'lenet5'})
  code, _, err = helpers.run_main(
      'study_b', '--timing_only', f'--weights_dir={folder}', '--levels=50,90',
      '--timing_repeats=1', f'--out_dir={tmp_path / "b"}',
      f'--data_dir={mnist_slice_dir}', capsys=capsys)
  assert code == 0, err[-20:]
  record = json.loads((tmp_path / 'b' / 'study_b_timing.json').read_text())
  rows = record['rows']
  assert list(rows[0]) == ['k', 'dense_seconds', 'masked_time_ratio',
                           'compact_time_ratio', 'compact_flops_ratio']
  assert [r['k'] for r in rows] == [50.0, 90.0]
  assert _compact_macs(0) == 416_520
  for r in rows:
    assert r['compact_flops_ratio'] == round(_compact_macs(r['k']) / 416_520, 4)
    assert r['dense_seconds'] > 0
    assert r['masked_time_ratio'] > 0 and r['compact_time_ratio'] > 0
  assert [r['compact_flops_ratio'] for r in rows] == [0.3211, 0.061]
  assert record['machine']['cpu_count'] == os.cpu_count()
  assert not (tmp_path / 'b' / 'study_b.csv').exists()


def test_unknown_arm_lists_the_valid_ones():
  with pytest.raises(TfpruneError, match='random, l1, structured_l1'):
    lenet_config.criterion('obs')
  assert {lenet_config.criterion(m) for m in lenet_config.ARMS} <= set(
      importances.REGISTRY)
