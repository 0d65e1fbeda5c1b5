"""Bad data is refused at load, in one line naming the array and its first bad index.

Each case runs the tool's command in-process (`helpers.run_main`) and
checks the one `error:` line and exit status 2; the array checks themselves
are also tested directly (`data.checks`).
"""

import json
import shutil

import numpy as np
import pytest

from tests import helpers
from tfprune.data import checks
from tfprune.data import datasets
from tfprune.data import md5sums
from tfprune.data import user_data
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras

MNIST_MLP = str(helpers.PREBUILT)


def _npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def _mnist_like(n=32, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, 28, 28, 1), dtype=np.float32),
          rng.integers(0, 10, n).astype(np.int64))


def _one_error(code, err):
  errors = [line for line in err if line.startswith('error:')]
  assert code == 2 and len(errors) == 1, err[-5:]
  return errors[0]


@pytest.mark.parametrize('make, message', [
    (lambda x: x.astype(np.complex64), r'x_test has complex dtype complex64'),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5 * 784 + 17,
                        np.nan, x), r'x_test\[5, 0, 17, 0\] is nan \(1 non-finite'),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 3, np.inf, x),
     r'x_test\[0, 0, 3, 0\] is inf'),
    (lambda x: np.full_like(x, np.nan), r'x_test\[0, 0, 0, 0\] is nan '
                                        r'\(25088 non-finite'),
    (lambda x: x.astype(np.float64) * 1e300, r'is too large for float32'),
])
def test_inputs_that_are_not_finite_real_numbers_are_refused(make, message):
  x, _ = _mnist_like()
  with pytest.raises(TfpruneError, match=message):
    checks.inputs(make(x), 'x_test', 'd.npz')


@pytest.mark.parametrize('labels, message', [
    (np.array([1, 2, 2**64 - 1], np.uint64),
     r'y_test\[2\] is 18446744073709551615, not a class index'),
    (np.array([1, -3, 2], np.int8), r'y_test\[1\] is -3, negative'),
    (np.array([0.0, 1.0]), r'y_test has dtype float64'),
    (np.array([True, False]), r'y_test has dtype bool'),
])
def test_labels_that_would_wrap_or_are_not_indices_are_refused(labels, message):
  with pytest.raises(TfpruneError, match=message):
    checks.labels(labels, 'y_test', 'd.npz')


def test_uint64_labels_that_fit_are_kept_exactly():
  labels = checks.labels(np.array([[0], [9]], np.uint64), 'y_test', 'd.npz')
  assert labels.dtype == np.int64 and labels.tolist() == [0, 9]


def test_channels_first_layout_is_named():
  x = np.zeros((4, 1, 28, 28), np.float32)
  with pytest.raises(TfpruneError, match=(
      r'x_train holds examples of shape \(1, 28, 28\) but the model takes '
      r'\(28, 28, 1\) \(a transposed layout \(channels-first\?\)\)')):
    checks.fits(x, np.zeros(4, np.int64), (28, 28, 1), 10,
                ('x_train', 'y_train'), 'd.npz')


def test_a_nan_weight_is_named():
  kernel = np.ones((3, 4), np.float32)
  kernel[2, 1] = np.nan
  with pytest.raises(TfpruneError, match=(
      r'm.keras: weight dense/kernel\[2, 1\] is nan \(1 non-finite')):
    checks.finite_params([('dense/bias', np.zeros(4)), ('dense/kernel', kernel)],
                         'm.keras')


def test_a_npy_file_as_data_is_refused(tmp_path):
  np.save(tmp_path / 'x.npy', np.zeros((2, 3)))
  with pytest.raises(TfpruneError, match=r'x.npy is a single .npy array, not '
                     r'an .npz of named arrays'):
    user_data.read(tmp_path / 'x.npy')


def test_the_arrays_sha256_ignores_when_the_file_was_written(tmp_path):
  x, y = _mnist_like()
  first = user_data.read(_npz(tmp_path / 'a.npz', x_test=x, y_test=y)).sha256
  second = user_data.read(_npz(tmp_path / 'b.npz', x_test=x, y_test=y)).sha256
  y[0] = (y[0] + 1) % 10
  third = user_data.read(_npz(tmp_path / 'c.npz', x_test=x, y_test=y)).sha256
  assert first == second != third


# The weight-folder sweep with --data, the model-file sweep and the
# calibration split: every path holds every split to the same checks.
@pytest.mark.parametrize('arrays, message', [
    ({'x_test': 'nan'}, r'x_test\[0, 0, 0, 0\] is nan'),
    ({'y_test': 'ten'}, r'y_test\[0\] is 10 but the model has 10 outputs'),
    ({'y_test': 'uint64max'}, r'y_test\[0\] is 18446744073709551615, not a class'),
    ({'x_test': 'complex'}, r'x_test has complex dtype'),
])
def test_weight_folder_sweep_with_data_checks_the_data(tmp_path, capsys, arrays,
                                                       message):
  x, y = _mnist_like()
  if arrays.get('x_test') == 'nan':
    x[0, 0, 0, 0] = np.nan
  if arrays.get('x_test') == 'complex':
    x = x.astype(np.complex64)
  if arrays.get('y_test') == 'ten':
    y[0] = 10
  if arrays.get('y_test') == 'uint64max':
    y = y.astype(np.uint64)
    y[0] = 2**64 - 1
  data = _npz(tmp_path / 'd.npz', x_test=x, y_test=y)
  code, _, err = helpers.run_main(
      'sweep', f'--weights_dir={MNIST_MLP}', f'--data={data}',
      '--allow_other_data', '--levels=0', f'--out_dir={tmp_path / "out"}',
      capsys=capsys)
  assert message.replace('\\', '') in _one_error(code, err).replace('\\', '') or (
      pytest.fail(err[-1]))
  assert not (tmp_path / 'out').exists()


@pytest.fixture(scope='module')
def conv_model(tmp_path_factory):
  folder = tmp_path_factory.mktemp('conv')
  keras.utils.set_random_seed(0)
  model = keras.Sequential([
      keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation='relu'),
      keras.layers.Flatten(), keras.layers.Dense(10)])
  model.save(folder / 'm.keras')
  weights = model.get_weights()
  weights[0][1, 2, 0, 3] = np.nan
  model.set_weights(weights)
  model.save(folder / 'nan.keras')
  return folder


def test_channels_first_calibration_data_is_refused_like_test_data(
    tmp_path, capsys, conv_model):
  x, y = _mnist_like(64)
  data = _npz(tmp_path / 'd.npz', x_test=x, y_test=y,
              x_train=np.transpose(x, (0, 3, 1, 2)), y_train=y)
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={conv_model / "m.keras"}', f'--data={data}',
      '--methods=wanda', '--levels=50', '--calibration_size=16',
      f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert 'x_train holds examples of shape (1, 28, 28) but the model takes ' \
         '(28, 28, 1) (a transposed layout (channels-first?))' in _one_error(
             code, err)


def test_a_keras_model_with_a_nan_weight_is_refused(tmp_path, capsys, conv_model):
  x, y = _mnist_like()
  data = _npz(tmp_path / 'd.npz', x_test=x, y_test=y)
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={conv_model / "nan.keras"}', f'--data={data}',
      '--levels=0', f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert 'nan.keras: weight ' in (line := _one_error(code, err))
  assert '[1, 2, 0, 3] is nan (1 non-finite values in all)' in line


def test_a_mnist_folder_holding_fashion_mnist_files_is_refused(data_dir, tmp_path):
  shared = datasets.pathlib.Path(data_dir)
  if not (shared / md5sums.NAME).is_file():
    pytest.skip(f'{data_dir} has no {md5sums.NAME}')
  (tmp_path / 'mnist').mkdir()
  for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    shutil.copy(shared / 'fashion_mnist' / name, tmp_path / 'mnist' / name)
  shutil.copy(shared / md5sums.NAME, tmp_path / md5sums.NAME)
  with pytest.raises(TfpruneError, match=(
      r'mnist/t10k-images-idx3-ubyte.gz does not match its md5 in .*MD5SUMS '
      r'\(it is the file listed as fashion_mnist/t10k-images-idx3-ubyte.gz\)')):
    datasets.load('mnist', 'test', str(tmp_path))
  # The official files pass the same check.
  assert len(datasets.load('fashion_mnist', 'test', data_dir, limit=5)) == 5


def test_training_that_diverged_is_refused_before_saving():
  from tfprune.training import training  # pylint: disable=import-outside-toplevel
  network = helpers.random_network()
  kernels = [k.copy() for k in network.kernels]
  kernels[1][0, 0] = np.inf
  network = type(network)(tuple(kernels), network.biases)
  with pytest.raises(TfpruneError, match=(
      r'the trained network: weight weight-2\[0, 0\] is inf .* training '
      r'diverged and nothing was saved; lower --learning_rate \(was 1e\+06\)')):
    training.check_converged(network, 1e6)


@pytest.mark.parametrize('args, message', [
    (['--levels=50,50'], 'error: --levels gives 50 twice: give each value once'),
    (['--methods=weight,unit,weight'],
     'error: --methods gives weight twice: give each value once'),
    (['--model_file='], 'error: --model_file is empty: pass the path of a Keras '
     'model file, or leave the flag out'),
])
def test_flag_errors_name_the_flag(tmp_path, capsys, args, message):
  code, _, err = helpers.run_main('sweep', *args, f'--out_dir={tmp_path}',
                                  capsys=capsys)
  assert _one_error(code, err) == message


def test_sweep_config_records_the_npz_it_used(tmp_path, mnist_slice_dir):
  from tfprune.drivers import sweep  # pylint: disable=import-outside-toplevel
  test = datasets.load('mnist', 'test', mnist_slice_dir, limit=200)
  data = _npz(tmp_path / 'mnist.npz', x_test=test.images, y_test=test.labels)
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(MNIST_MLP, str(out), data=data, levels=(0,),
                              methods=('weight',), allow_other_data=True))
  record = json.loads((out / sweep.CONFIG_NAME).read_text())
  assert record['config']['data'] == data
  assert record['config']['allow_other_data'] is True
  assert record['other_data_allowed'] is True
  assert record['data'] == {
      'data': 'npz-sha256:' + user_data.read(data).sha256,
      'data_file': 'mnist.npz', 'input_shape': [28, 28, 1],
      'value_range': [float(test.images.min()), float(test.images.max())]}


def test_prune_layers_of_a_dense_folder_must_name_its_layers(tmp_path, capsys):
  # A dense folder is a graph: its layers are layer_1, layer_2, ...
  code, _, err = helpers.run_main(
      'sweep', f'--weights_dir={MNIST_MLP}', '--prune_layers=foo', '--levels=0',
      f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert _one_error(code, err).startswith(
      "error: --prune_layers names 'foo', which is not a layer with a kernel")


def test_study_a_without_finetuning_is_refused():
  from experiments.studies import study_fashion  # pylint: disable=import-outside-toplevel
  with pytest.raises(TfpruneError, match=r'finetune_epochs must be at least 1 '
                     r'\(Study A measures fine-tuned networks\), got 0'):
    study_fashion.StudyAConfig('', '', finetune_epochs=0)


def test_duplicate_targets_of_gradual_are_refused(tmp_path, capsys):
  code, _, err = helpers.run_main('gradual', '--targets=90,90',
                                  f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert _one_error(code, err) == (
      'error: --targets gives 90 twice: give each value once')
