"""The structured ResNet-18 study end to end on tiny mock Fashion-MNIST."""

import json
import pathlib

import numpy as np
import pytest

from tests import helpers
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.studies import structured_resnet
from tfprune.transforms import groups as groups_lib

K = 50


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  data = tmp_path_factory.mktemp('data')
  helpers.write_dataset(data, 'fashion_mnist', 'train', n=64)
  helpers.write_dataset(data, 'fashion_mnist', 't10k', n=32, seed=1)
  out = tmp_path_factory.mktemp('out') / 'structured'
  config = structured_resnet.StructuredConfig(
      out_dir=str(out), data_dir=str(data), width=0.125, k=K, train_limit=None,
      epochs=1, finetune_epochs=1, batch_size=32, timing_runs=2,
      timing_rounds=1, timing_min_seconds=0.0)
  return config, structured_resnet.run(config, verbose=False)


def test_every_group_keeps_half_its_channels(study):
  _, result = study
  before = groups_lib.analyse(result.dense)
  after = {g.name: g.size for g in groups_lib.analyse(result.compacted).groups}
  pruned = [g for g in before.groups if not g.refused]
  assert len(pruned) == len(result.removed) > 10
  for group in pruned:
    assert len(result.removed[group.name]) == group.size // 2
    assert after[group.name] == structured_resnet.kept(group.size, K)
    assert after[group.name] == group.size - group.size // 2
  # Only the output layer's group (tied to the network output) is whole.
  assert [g.name for g in before.groups if g.refused] == ['dense']


def test_compacted_computes_the_masked_graph(study):
  _, result = study
  x = helpers.random_images(result.dense.input_shape, n=8)
  masked = evaluator.predict(result.masked, x)
  np.testing.assert_allclose(evaluator.predict(result.compacted, x), masked,
                             rtol=1e-5, atol=1e-6)
  keras_model = build.to_keras(result.compacted, 'tf_keras')
  np.testing.assert_allclose(keras_model.predict(x, verbose=0), masked,
                             rtol=1e-5, atol=1e-6)


def test_files_are_written(study):
  config, result = study
  out = pathlib.Path(config.out_dir)
  rows = helpers.read_csv(out / 'results.csv')
  assert [r['model'] for r in rows] == ['dense', 'oneshot', 'finetuned']
  assert list(rows[0]) == list(structured_resnet.COLUMNS)
  dense, oneshot, finetuned = rows
  assert int(oneshot['params']) == int(finetuned['params']) < int(dense['params'])
  assert int(oneshot['macs']) < int(dense['macs']) / 3
  for row in rows:
    path = out / 'models' / structured_resnet.MODEL_FILES[row['model']]
    assert path.stat().st_size == int(row['keras_bytes'])
  assert json.loads((out / 'config.json').read_text())['k'] == K
  timing = json.loads((out / 'timing.json').read_text())
  assert set(timing['latency_median']) == {'1', '256'}
  assert timing == json.loads(json.dumps(result.timing))
  assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]


@pytest.mark.parametrize('change, message', [
    ({'k': 120}, 'k must be in [0, 100], got 120'),
    ({'importance': 'l3'}, 'importance must be one of l2, l1, bn_gamma'),
    ({'finetune_epochs': -1}, 'finetune_epochs must be >= 0, got -1'),
    ({'dataset': 'penguins'}, 'needs images'),
])
def test_config_is_validated(change, message):
  with pytest.raises(TfpruneError, match=message.replace('[', r'\[').replace(']', r'\]')):
    structured_resnet.StructuredConfig(out_dir='x', **change)
