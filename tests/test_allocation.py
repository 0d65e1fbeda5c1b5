"""Allocations (uniform, global, ERK, sensitivity) and N:M patterns: exact counts.

Parameterized over every allocation and three architectures (the MLP and
LeNet-5 weight folders, a keras_zoo CNN), on the graph path and, for the MLP,
the `Network` path the sweep uses; the sensitivity scan runs end to end once
through its script, and bad input ends in one `error:` line and exit 2.
"""

import csv
import re

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.allocation import allocators
from tfprune.allocation import counts
from tfprune.allocation import erk
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import graph_pruning
from tfprune.criteria import patterns
from tfprune.criteria import pruning
from tfprune.drivers import folder_graph
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.keras_io import importer

LEVELS = (0, 50, 90, 95, 99)


def _kernels(seed=0, ties=False):
  rng = np.random.default_rng(seed)
  shapes = [(5, 5, 1, 6), (5, 5, 6, 16), (400, 120), (120, 84)]
  out = {}
  for i, s in enumerate(shapes):
    w = rng.normal(scale=1 + i, size=s).astype(np.float32)
    out[f'layer_{i + 1}'] = np.round(w) if ties else w
  return out


def _scan(kernels):
  """A made-up scan: larger layers and later ones are less sensitive."""
  levels = (0, 50, 80, 90, 95, 99, 99.5, 100)
  curves = {}
  for i, (name, w) in enumerate(kernels.items()):
    loss = tuple(0.1 + (k / 100) ** (2 + i) * 1e4 / w.size for k in levels)
    curves[name] = scan_lib.Curve(w.size, levels, (1.0,) * len(levels), loss)
  return scan_lib.Scan(curves, 'weight')


@pytest.mark.parametrize('count', range(0, 151))
def test_level_for_count_prunes_exactly_that_count(count):
  for size in (150, 2400, 784_000, 1_000_000):
    c = count * size // 150
    assert pruning.prune_count(counts.level_for_count(c, size), size) == c


@pytest.mark.parametrize('ties', [False, True])
@pytest.mark.parametrize('k', LEVELS)
def test_global_prunes_exactly_k_of_all_and_smallest_first(k, ties):
  kernels = _kernels(ties=ties)
  levels = allocators.allocate('global', kernels, k)
  masks = [pruning.weight_magnitude_mask(w, levels[n]) for n, w in kernels.items()]
  total = sum(w.size for w in kernels.values())
  assert sum(int(m.sum()) for m in masks) == total - pruning.prune_count(k, total)
  kept = np.concatenate([np.abs(w[m]) for w, m in zip(kernels.values(), masks)])
  cut = np.concatenate([np.abs(w[~m]) for w, m in zip(kernels.values(), masks)])
  if kept.size and cut.size:
    assert kept.min() >= cut.max()
  # The per-layer levels give back the one global mask, ties included.
  for mask, reference in zip(masks, allocators.global_masks(
      list(kernels.values()), k)):
    np.testing.assert_array_equal(mask, reference)


@pytest.mark.parametrize('k', LEVELS)
def test_erk_densities_match_the_formula(k):
  shapes = {n: w.shape for n, w in _kernels().items()}
  dens = erk.densities(shapes, k)
  sizes = {n: int(np.prod(s)) for n, s in shapes.items()}
  total = sum(sizes.values())
  assert sum(dens[n] * sizes[n] for n in shapes) == pytest.approx(
      (1 - k / 100) * total)
  sparse = [n for n in shapes if dens[n] < 1]
  scales = [dens[n] / (sum(shapes[n]) / np.prod(shapes[n])) for n in sparse]
  assert k == 0 or max(scales) == pytest.approx(min(scales))  # one epsilon
  for n in shapes:  # dense layers are exactly those the formula would overfill
    if dens[n] == 1 and sparse:
      assert min(scales) * sum(shapes[n]) / np.prod(shapes[n]) >= 1 - 1e-12
  pruned = erk.prune_counts(shapes, k)
  assert sum(pruned.values()) == pruning.prune_count(k, total)
  for n in shapes:
    assert abs(pruned[n] - sizes[n] * (1 - dens[n])) < 1


def test_erk_keeps_the_small_layer_dense_and_rescales():
  shapes = {'tiny': (2, 2), 'big': (1000, 1000)}
  dens = erk.densities(shapes, 50)
  assert dens['tiny'] == 1
  assert dens['big'] == pytest.approx((0.5 * 1_000_004 - 4) / 1_000_000)


GROUPS = [((16, 6), -1), ((13, 5), -1), ((3, 3, 5, 7), -1), ((3, 3, 4, 2), 2)]


@pytest.mark.parametrize('text', ['2:4', '1:4', '3:8', '4:4', '1:1', '1:2'])
@pytest.mark.parametrize('shape, axis', GROUPS)
def test_nm_keeps_exactly_n_of_every_m(text, shape, axis):
  pattern = patterns.parse(text)
  scores = np.round(np.random.default_rng(1).normal(size=shape), 1)  # ties
  mask = patterns.nm_mask(scores, pattern, axis)
  flat_mask = np.moveaxis(mask, axis, -1).reshape(-1, shape[axis])
  flat = np.moveaxis(scores, axis, -1).reshape(-1, shape[axis])
  for start in range(0, len(flat), pattern.m):
    group, keep = flat[start:start + pattern.m], flat_mask[start:start + pattern.m]
    assert (keep.sum(axis=0) == min(pattern.n, len(group))).all()
    for col in range(group.shape[1]):
      kept, cut = group[keep[:, col], col], group[~keep[:, col], col]
      if cut.size:
        assert kept.min() >= cut.max()


@pytest.mark.parametrize('text', ['5:4', '0:4', '2', 'a:b', '2:4:8', '-1:4'])
def test_bad_patterns_refused(text):
  with pytest.raises(TfpruneError, match=r'pattern .* N:M|not N:M'):
    patterns.parse(text)


@pytest.fixture(scope='module', params=['mlp-folder', 'lenet5-folder', 'zoo-cnn'])
def architecture(request):
  if request.param == 'zoo-cnn':
    return importer.from_keras(keras_zoo.build('cnn', 'keras3'))
  folder = 'mlp-mnist' if request.param == 'mlp-folder' else 'lenet5-mnist'
  return network_graph.to_graph(weights.load(helpers.REPO / 'weights' / folder).network)


@pytest.mark.parametrize('k', (0, 90, 95))
@pytest.mark.parametrize('allocation', sorted(allocators.ALLOCATIONS))
def test_allocation_on_every_architecture(architecture, allocation, k):
  graph = architecture
  names = graph_pruning.prunable(graph)
  kernels = {n: graph.node(n).params['kernel'] for n in names}
  scan = _scan(kernels) if allocation in allocators.NEEDS_SCAN else None
  levels = allocators.allocate(allocation, kernels, k, scan)
  pruned = graph_pruning.prune(graph, 'weight', levels, names)
  zeros = {n: int(kernels[n].size - np.count_nonzero(
      pruned.node(n).params['kernel'])) for n in names}
  total = sum(w.size for w in kernels.values())
  if allocation == 'uniform':
    assert zeros == {n: pruning.prune_count(k, w.size) for n, w in kernels.items()}
  else:
    assert sum(zeros.values()) == pruning.prune_count(k, total)
  # The unit criterion takes the same levels (of units).
  unit = graph_pruning.prune(graph, 'unit', levels, names)
  for n in names:
    axis = graph_pruning.ops.get(graph.node(n).op).kernels['kernel']
    w = unit.node(n).params['kernel']
    dead = ~np.moveaxis(w != 0, axis, -1).reshape(-1, w.shape[axis]).any(axis=0)
    assert dead.sum() == pruning.prune_count(levels[n], w.shape[axis])


def test_sensitivity_prefers_the_robust_layer():
  kernels = {'fragile': np.ones((100, 100)), 'robust': np.ones((100, 100))}
  levels = (0, 50, 90, 99)
  scan = scan_lib.Scan({
      'fragile': scan_lib.Curve(10_000, levels, (1,) * 4, (0.1, 0.5, 2, 5)),
      'robust': scan_lib.Curve(10_000, levels, (1,) * 4, (0.1, 0.1, 0.1, 0.2))},
      'weight')
  got = allocators.allocate('sensitivity', kernels, 60, scan)
  n = {name: pruning.prune_count(level, 10_000) for name, level in got.items()}
  assert sum(n.values()) == 12_000 and n['robust'] >= 9_000
  with pytest.raises(TfpruneError, match='prune at most'):
    allocators.allocate('sensitivity', kernels, 99.9, scan)


def test_sensitivity_file_for_another_model_refused():
  kernels = _kernels()
  other = _scan({'layer_1': np.ones((784, 1000))})
  with pytest.raises(TfpruneError, match='made for another network'):
    allocators.allocate('sensitivity', kernels, 90, other)


def test_unknown_allocation_lists_the_valid_ones():
  with pytest.raises(TfpruneError, match="unknown allocation 'magic': choose one of "
                     'uniform, global, erk, sensitivity'):
    allocators.get('magic')


@pytest.mark.parametrize('fields, match', [
    (dict(allocation='magic'), "unknown allocation 'magic'"),
    (dict(allocation='sensitivity'), 'needs --sensitivity_csv'),
    (dict(sensitivity_csv='s.csv'), 'only read by --allocation=sensitivity'),
    (dict(pattern='5:4'), 'pattern 5:4 is not N:M'),
    (dict(pattern='0:4'), 'pattern 0:4 is not N:M'),
    (dict(pattern='2:4', allocation='erk'), 'drop --allocation=erk or --pattern'),
    (dict(pattern='2:4', methods=('unit',)), 'needs a weight-level method'),
])
def test_sweep_config_refuses(fields, match):
  with pytest.raises(TfpruneError, match=match):
    sweep.SweepConfig(weights_dir='w', out_dir='o', **fields)


def test_sweep_rows_and_csv(prebuilt, mnist_test):
  small = type(mnist_test)(mnist_test.images[:500], mnist_test.labels[:500])
  uniform = sweep.SweepConfig(weights_dir='w', out_dir='o', methods=('weight',),
                              levels=(90,), pattern='2:4')
  rows = sweep.sweep(uniform, folder_graph.to_graph(prebuilt), small)
  assert [(r.method, r.k) for r in rows] == [('weight', 90), ('weight-2:4', 50)]
  assert rows[1].sparsity == 0.5
  assert sweep.to_csv(rows).splitlines()[0] == ','.join(sweep.COLUMNS)
  assert 'allocation' not in sweep.config_record(uniform)
  config = sweep.SweepConfig(weights_dir='w', out_dir='o', methods=('weight',),
                             levels=(90,), allocation='global')
  row, = sweep.sweep(config, folder_graph.to_graph(prebuilt), small)
  header, line = list(csv.reader(sweep.to_csv([row]).splitlines()))
  assert header[-1] == 'layer_sparsity' and line[-1].startswith('layer_1=0.')
  assert sweep.config_record(config)['allocation'] == 'global'


def test_sensitivity_scan_and_sweep_end_to_end(tmp_path, capsys):
  model = keras_zoo.build('cnn', 'keras3')
  shape = tuple(model.inputs[0].shape[1:])
  classes = model.outputs[0].shape[-1]
  rng = np.random.default_rng(0)
  x = rng.standard_normal((240, *shape)).astype(np.float32)
  y = np.argmax(x.reshape(240, -1) @ rng.standard_normal(
      (int(np.prod(shape)), classes)), axis=1)
  model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')
  model.fit(x[:200], y[:200], epochs=2, batch_size=50, verbose=0)
  model.save(tmp_path / 'model.keras')
  np.savez(tmp_path / 'data.npz', x_train=x[:200], y_train=y[:200],
           x_test=x[200:], y_test=y[200:])
  out = tmp_path / 'scan'
  code, _, err = helpers.run_main(
      'sensitivity', f'--model_file={tmp_path / "model.keras"}',
      f'--data={tmp_path / "data.npz"}', '--holdout_size=100',
      '--levels=0,50,90,99,100', f'--out_dir={out}', capsys=capsys)
  assert code == 0, err[-20:]
  with open(out / 'sensitivity.csv') as f:
    table = list(csv.DictReader(f))
  names = graph_pruning.prunable(importer.from_keras(tmp_path / 'model.keras'))
  assert [(r['layer'], r['k']) for r in table] == [
      (n, k) for n in names for k in ('0', '50', '90', '99', '100')]
  assert (out / 'sensitivity.png').exists() and (out / 'sensitivity_config.json').exists()
  config = sweep.SweepConfig(
      weights_dir=None, model_file=str(tmp_path / 'model.keras'),
      data=str(tmp_path / 'data.npz'), out_dir=str(tmp_path / 'sweep'),
      methods=('weight',), levels=(0, 90), allocation='sensitivity',
      sensitivity_csv=str(out / 'sensitivity.csv'))
  rows = sweep.run(config)
  assert [r.sparsity for r in rows][1] == pytest.approx(0.9, abs=1e-3)
  assert all(r.layer_sparsity for r in rows)


SCRIPT_CASES = {
    'unknown-allocation': (['--allocation=magic'], '--allocation=magic is not valid: use one of uniform, global'),
    'bad-pattern': (['--pattern=5:4'], 'pattern 5:4 is not N:M'),
    'zero-pattern': (['--pattern=0:4'], 'pattern 0:4 is not N:M'),
    'scan-of-another-model': (['--allocation=sensitivity',
                               '--sensitivity_csv=SCAN'], 'made for another network'),
}


@pytest.mark.parametrize('name', sorted(SCRIPT_CASES))
def test_script_bad_input_exits_2_with_one_line(tmp_path, data_dir, name, capsys):
  args, pattern = SCRIPT_CASES[name]
  scan_path = tmp_path / 'other.csv'
  scan_path.write_text(scan_lib.to_csv(_scan(_kernels())))
  args = [a.replace('SCAN', str(scan_path)) for a in args]
  out = tmp_path / 'out'
  code, _, err = helpers.run_main('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                                  '--levels=90', '--methods=weight', *args,
                                  capsys=capsys)
  assert code == 2, err
  lines = [l for l in err if l.startswith('error:')]
  assert len(lines) == 1 and re.search(pattern, lines[0]), err
  assert not (out / sweep.CSV_NAME).exists()
