"""tfprune.keras on a ViT: the callback prunes every kernel (attention projections too) or whole heads and MLP units; the result reloads without tfprune."""

import json

import keras
import numpy as np

from tests import helpers
from tfprune.criteria import pruning
from tfprune.drivers import vit_model
from tfprune.keras import model_file


def test_small_vit_weight_and_unit_pruned_saved_and_reloaded(tmp_path,
                                                            mnist_slice_dir):
  vit = vit_model.build(vit_model.ViTConfig(
      out_dir='unused', dataset='mnist', patch=7, dim=16, heads=2, mlp_dim=32,
      blocks=2))
  vit.save(tmp_path / 'vit.keras')
  config = model_file.ModelFileRun(
      model_file=str(tmp_path / 'vit.keras'), out_dir=str(tmp_path / 'out'),
      dataset='mnist', data_dir=mnist_slice_dir, epochs=2, batch_size=64)
  results = model_file.run(config)
  assert json.loads((tmp_path / 'out' / model_file.RESULTS_NAME).read_text()
                    ) == json.loads(json.dumps(results))
  weight, unit = results['runs']
  # Every kernel but the output layer's, the four attention projections of
  # each block included, holds exactly floor(80·n/100) zeros.
  kernels = weight['kernel_zeros']
  attention = [n for n in kernels if '_attention/' in n]
  assert len(attention) == 8 and len(kernels) == 2 + 2 * 6 + 1, sorted(kernels)
  for name, (zeros, size) in kernels.items():
    want = 0 if name.startswith('head/') else pruning.prune_count(80, size)
    assert zeros == want, (name, zeros, size)
  # unit: one of the two heads and 16 of the 32 MLP units of each block left.
  small = keras.models.load_model(tmp_path / 'out' / 'unit.keras')
  for b in (1, 2):
    mha = small.get_layer(f'block{b}_attention')
    assert mha.get_config()['num_heads'] == 1
    assert small.get_layer(f'block{b}_mlp1').units == 16
  assert unit['params'] < unit['dense_params']
  # Plain Keras in a fresh interpreter: the accuracy recorded before saving.
  from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  np.save(tmp_path / 'x.npy', test.images)
  jobs = [(r['criterion'], tmp_path / 'out' / f'{r["criterion"]}.keras',
           tmp_path / 'x.npy') for r in results['runs']]
  fresh = helpers.load_in_fresh_process('keras3', jobs)
  assert not fresh['tfprune_imported']
  for r in results['runs']:
    outputs = np.asarray(fresh['models'][r['criterion']]['outputs'])
    assert np.mean(np.argmax(outputs, 1) == test.labels) == r['accuracy']
    assert r['reloaded_accuracy'] == r['accuracy']
