"""Files record the data their network was made on; every tool refuses other data.

A sweep's graph files, dense exports and `.keras` files carry a provenance
tag (`ziptags`), weight folders their manifest's dataset; each case gives a
tool a network with data other than its own and expects one `error:` line
and exit 2, or, with `--allow_other_data`, a run that records the override.
"""

import json
import shutil
import zipfile

import numpy as np
import pytest

from tests import helpers
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError

REPO = helpers.REPO
MNIST_MLP = str(helpers.PREBUILT)
LENET = str(REPO / 'weights' / 'lenet5-mnist')
FASHION_CNN = str(REPO / 'weights' / 'fashion_cnn-fashion_mnist')


def _one_error(code, err):
  errors = [line for line in err if line.startswith('error:')]
  assert code == 2 and len(errors) == 1, err[-5:]
  return errors[0]


@pytest.fixture(scope='module')
def fashion_npz(data_dir, tmp_path_factory):
  """The first 200 Fashion-MNIST test and training images as a user's .npz."""
  test = datasets.load('fashion_mnist', 'test', data_dir, limit=200)
  train = datasets.load('fashion_mnist', 'train', data_dir, limit=200)
  path = tmp_path_factory.mktemp('fashion') / 'fashion.npz'
  np.savez(path, x_test=test.images, y_test=test.labels, x_train=train.images,
           y_train=train.labels)
  return str(path)


@pytest.fixture(scope='module')
def mnist_exports(mnist_slice_dir, tmp_path_factory):
  """A LeNet-5 graph file and an MLP dense export made on MNIST, moved away
  from the sweeps that made them (their metadata's weights_dir no longer
  leads anywhere useful)."""
  folder = tmp_path_factory.mktemp('exports')
  for weights_dir, name in ((LENET, 'lenet.npz'), (MNIST_MLP, 'mlp.npz')):
    out = folder / name.replace('.npz', '')
    sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=mnist_slice_dir,
                                methods=('weight',), levels=(50,),
                                save_pruned=True))
    shutil.copy(out / 'pruned' / 'weight-k50.npz', folder / name)
  return folder


@pytest.mark.parametrize('name', ['lenet.npz', 'mlp.npz'])
def test_evaluate_refuses_an_export_on_another_dataset(
    mnist_exports, data_dir, capsys, name):
  path = mnist_exports / name
  assert ziptags.read(path) == {'data': 'mnist', 'input_shape': [28, 28, 1],
                                'value_range': [0.0, 1.0]}
  code, _, err = helpers.run_main(
      'evaluate', f'--export={path}', '--dataset=fashion_mnist',
      f'--data_dir={data_dir}', capsys=capsys)
  assert _one_error(code, err) == (
      f'error: {path} was made on mnist but this run gives it fashion_mnist: '
      'pass the data it was made on (--dataset=mnist without --data), or '
      '--allow_other_data to score it on other data on purpose')
  code, out, err = helpers.run_main(
      'evaluate', f'--export={path}', '--dataset=fashion_mnist',
      f'--data_dir={data_dir}', '--allow_other_data', capsys=capsys)
  assert code == 0, err[-3:]
  assert 'on fashion_mnist test' in out


def test_evaluate_refuses_a_graph_file_on_a_user_npz(mnist_exports, fashion_npz,
                                                     capsys):
  code, _, err = helpers.run_main(
      'evaluate', f'--export={mnist_exports / "lenet.npz"}',
      f'--data={fashion_npz}', capsys=capsys)
  assert 'was made on mnist but this run gives it the .npz fashion.npz ' \
         '(arrays sha256 ' in _one_error(code, err)


@pytest.mark.parametrize('args', [
    ['sweep', f'--weights_dir={MNIST_MLP}', '--levels=0'],
    ['sweep', f'--weights_dir={LENET}', '--levels=0'],
    ['benchmark', f'--weights_dir={MNIST_MLP}', '--levels=0', '--min_seconds=0',
     '--repeats=1'],
    ['sensitivity', f'--weights_dir={MNIST_MLP}', '--levels=50',
     '--holdout_size=50'],
    ['gradual', f'--weights_dir={MNIST_MLP}', '--targets=50', '--epochs=1',
     '--end_step=1'],
])
def test_every_tool_refuses_a_user_npz_of_other_data(fashion_npz, tmp_path,
                                                     capsys, args):
  name, *flags = args
  code, _, err = helpers.run_main(
      name, *flags, f'--data={fashion_npz}', f'--out_dir={tmp_path / "out"}',
      capsys=capsys)
  folder = flags[0].split('=', 1)[1]
  assert _one_error(code, err).startswith(
      f'error: {folder} was made on mnist but this run gives it the .npz '
      'fashion.npz')
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args', [
    ['benchmark', '--min_seconds=0'],  # the graph benchmark of a CNN folder
    ['benchmark', '--point_cost'],
    ['sensitivity', '--levels=50', '--holdout_size=50'],
    ['sweep', '--levels=0'],
])
def test_every_tool_refuses_a_fashion_folder_on_mnist(data_dir, tmp_path, capsys,
                                                      args):
  name, *flags = args
  code, _, err = helpers.run_main(
      name, f'--weights_dir={FASHION_CNN}', *flags, f'--data_dir={data_dir}',
      f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert _one_error(code, err).startswith(
      f'error: the weights in {FASHION_CNN} were trained on fashion_mnist, not '
      'mnist')


def test_keras_baseline_refuses_weights_of_another_dataset(tmp_path, capsys):
  folder = tmp_path / 'mlp-fashion'
  shutil.copytree(MNIST_MLP, folder)
  manifest = json.loads((folder / 'manifest.json').read_text())
  (folder / 'manifest.json').write_text(json.dumps(
      {**manifest, 'dataset': 'fashion_mnist'}))
  code, _, err = helpers.run_main('keras_baseline', f'--weights_dir={folder}',
                                  '--levels=0', capsys=capsys)
  assert _one_error(code, err).startswith(
      f'error: the weights in {folder} were trained on fashion_mnist, not mnist')


def test_save_keras_files_carry_their_data_and_a_sweep_checks_it(
    fashion_npz, tmp_path, capsys):
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  model = keras_zoo.build('cnn', 'keras3')
  shape = tuple(model.inputs[0].shape[1:])
  classes = model.outputs[0].shape[-1]
  rng = np.random.default_rng(0)
  data = tmp_path / 'own.npz'
  np.savez(data, x_test=rng.random((32, *shape), dtype=np.float32),
           y_test=rng.integers(0, classes, 32))
  model.save(tmp_path / 'model.keras')
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(None, str(out), model_file=str(tmp_path / 'model.keras'),
                              data=str(data), methods=('weight',), levels=(50,),
                              save_keras=True))
  saved = out / 'pruned' / 'weight-k50.keras'
  tag = ziptags.read(saved)
  assert tag['data'].startswith(provenance.NPZ_PREFIX) and tag['data_file'] == 'own.npz'
  with np.load(data) as arrays:
    x_test = arrays['x_test']
  assert tag['value_range'] == pytest.approx(
      [float(x_test.min()), float(x_test.max())], rel=1e-5)  # 6 digits kept
  other = tmp_path / 'other.npz'
  np.savez(other, x_test=rng.random((32, *shape), dtype=np.float32),
           y_test=rng.integers(0, classes, 32))
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={saved}', f'--data={other}', '--levels=0',
      f'--out_dir={tmp_path / "out2"}', capsys=capsys)
  assert f'{saved} was made on the .npz own.npz' in _one_error(code, err)
  # The tag is a zip comment: plain Keras loads the file as before.
  loaded = helpers.load_in_fresh_process('keras3', [
      ('m', saved, _save_inputs(tmp_path, shape))])
  assert loaded['tfprune_imported'] is False


def test_data_scaled_another_way_is_named_in_the_refusal(tmp_path, capsys,
                                                         monkeypatch):
  monkeypatch.chdir(tmp_path)  # short paths: the whole line fits
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  model = keras_zoo.build('cnn', 'keras3')
  shape = tuple(model.inputs[0].shape[1:])
  classes = model.outputs[0].shape[-1]
  rng = np.random.default_rng(1)
  x_test = rng.random((32, *shape), dtype=np.float32)  # values in [0, 1)
  y_test = rng.integers(0, classes, 32)
  np.savez('unit.npz', x_test=x_test, y_test=y_test)
  np.savez('bytes.npz', x_test=x_test * 255, y_test=y_test)
  np.savez('resampled.npz', x_test=x_test[::-1], y_test=y_test)
  model.save('model.keras')
  sweep.run(sweep.SweepConfig(None, 'out', model_file='model.keras',
                              data='unit.npz', methods=('weight',),
                              levels=(50,), save_keras=True))
  saved = 'out/pruned/weight-k50.keras'
  made = ziptags.read(saved)['value_range']
  errors = {}
  for name in ('bytes', 'resampled'):
    code, _, err = helpers.run_main(
        'sweep', f'--model_file={saved}', f'--data={name}.npz',
        '--levels=0', f'--out_dir={name}', capsys=capsys)
    errors[name] = _one_error(code, err)
  # Both are other data; only the one scaled to 0..255 is told so.
  assert (f'(values in [{x_test.min() * 255:g}, {x_test.max() * 255:g}], '
          f'where the network saw [{made[0]:g}, {made[1]:g}]: scaled another '
          'way?)') in errors['bytes']
  assert 'scaled another way' not in errors['resampled']
  assert 'was made on the .npz unit.npz' in errors['resampled']


def _save_inputs(folder, shape):
  path = folder / 'inputs.npy'
  np.save(path, np.zeros((2, *shape), np.float32))
  return path


def test_two_save_keras_sweeps_write_the_same_bytes(tmp_path):
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  model = keras_zoo.build('residual', 'tf_keras')
  shape = tuple(model.inputs[0].shape[1:])
  rng = np.random.default_rng(1)
  data = tmp_path / 'd.npz'
  np.savez(data, x_test=rng.random((16, *shape), dtype=np.float32),
           y_test=rng.integers(0, model.outputs[0].shape[-1], 16))
  model.save(tmp_path / 'model.keras')
  out = tmp_path / 'out'
  runs = [tmp_path / 'first', out]
  for _ in runs:  # the same command twice, into the same folder
    sweep.run(sweep.SweepConfig(None, str(out), model_file=str(tmp_path / 'model.keras'),
                                data=str(data), methods=('weight', 'unit'),
                                levels=(0, 50), save_keras=True, save_pruned=True))
    if not runs[0].exists():
      shutil.copytree(out, runs[0])
  names = sorted(p.relative_to(runs[0]) for p in runs[0].rglob('*') if p.is_file())
  assert sum(1 for n in names if n.suffix == '.keras') == 4
  for name in names:
    if name.name == sweep.TIMING_NAME:  # the one file of timings
      continue
    assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name


def test_a_resume_from_other_starting_weights_or_data_is_refused(tmp_path):
  from tfprune.drivers import gradual_config  # pylint: disable=import-outside-toplevel
  config = gradual_config.GradualConfig(out_dir=str(tmp_path),
                                        weights_dir=MNIST_MLP, targets=(50,))
  recorded = {'weights_sha256': {'weight-1.npy': 'aa', 'bias-1.npy': 'bb'},
              'data': {'data': 'npz-sha256:11', 'input_shape': [784]}}
  (tmp_path / gradual_config.CONFIG_NAME).write_text(json.dumps(
      {'config': gradual_config.config_record(config), **recorded}))
  gradual_config.check_resumable(tmp_path, config, recorded)  # the same: resumes
  replaced = {**recorded, 'weights_sha256': {'weight-1.npy': 'cc',
                                             'bias-1.npy': 'bb'}}
  with pytest.raises(TfpruneError, match=(
      r"was started from other inputs than this run \(the starting weights' "
      r'weight-1.npy changed since\): restore them to resume')):
    gradual_config.check_resumable(tmp_path, config, replaced)
  with pytest.raises(TfpruneError, match=r'\(data changed since\)'):
    gradual_config.check_resumable(tmp_path, config, {
        **recorded, 'data': {'data': 'npz-sha256:22', 'input_shape': [784]}})


def test_two_sensitivity_scans_write_the_same_bytes(tmp_path, mnist_slice_dir,
                                                    capsys):
  out = tmp_path / 'out'
  runs = [tmp_path / 'first', out]
  for _ in runs:  # the same command twice, into the same folder
    code, _, err = helpers.run_main(
        'sensitivity', f'--weights_dir={MNIST_MLP}', f'--data_dir={mnist_slice_dir}',
        '--levels=0,50,90', '--holdout_size=100', f'--out_dir={out}',
        capsys=capsys)
    assert code == 0, err[-3:]
    if not runs[0].exists():
      shutil.copytree(out, runs[0])
  names = sorted(p.name for p in runs[0].iterdir())
  assert names == ['sensitivity.csv', 'sensitivity.png', 'sensitivity_config.json']
  for name in names:
    assert (runs[0] / name).read_bytes() == (out / name).read_bytes(), name


def test_a_model_with_a_shared_layer_saves_to_the_same_bytes(tmp_path):
  import keras  # pylint: disable=import-outside-toplevel
  paths = []
  for i in range(2):  # two model objects: other memory addresses, same model
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4)
    model = keras.Model(inputs, keras.layers.Dense(2)(shared(shared(inputs))))
    paths.append(ziptags.save_keras(model, tmp_path / f'm{i}.keras'))
  with zipfile.ZipFile(paths[0]) as archive:
    config = json.loads(archive.read('config.json'))
  assert '"shared_object_id": 1' in json.dumps(config)
  assert paths[0].read_bytes() == paths[1].read_bytes()
  loaded = keras.models.load_model(paths[0])
  x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
  np.testing.assert_array_equal(loaded(x), model(x))  # same weights, same graph
