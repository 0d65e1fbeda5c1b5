"""tfprune.keras: the Keras 3 pruning callback and step, on the TensorFlow and JAX backends.

The backend-independent checks live in `keras3_checks` and run here on the
TensorFlow backend (this process) and, all in one fresh process, on JAX.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import keras3_checks
from tfprune import keras as tfk
from tfprune.errors import TfpruneError


@pytest.mark.parametrize('name', list(keras3_checks.CHECKS))
def test_tensorflow_backend(name, tmp_path):
  assert keras.backend.backend() == 'tensorflow'
  keras3_checks.CHECKS[name](tmp_path)


def test_jax_backend(tmp_path):
  pytest.importorskip('jax')
  env = dict(os.environ, KERAS_BACKEND='jax')
  out = subprocess.run([sys.executable, '-m', 'tests.keras3_checks',
                        str(tmp_path)], capture_output=True, text=True, env=env,
                       cwd=keras3_checks.REPO, timeout=900, check=False)
  assert out.returncode == 0, out.stderr[-4000:]
  report = json.loads(out.stdout.strip().splitlines()[-1])
  assert report == {'backend': 'jax', 'passed': list(keras3_checks.CHECKS)}


class _Interrupt(keras.callbacks.Callback):
  """Stops training like a kill, after epoch `after`'s checkpoint was written
  (or after batch `batch` of that epoch)."""

  def __init__(self, after: int, batch: int | None = None):
    super().__init__()
    self.after, self.batch, self.epoch = after, batch, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if self.batch is not None and (self.epoch + 1, batch + 1) == (
        self.after, self.batch):
      raise KeyboardInterrupt

  def on_epoch_end(self, epoch, logs=None):
    if self.batch is None and epoch + 1 == self.after:
      raise KeyboardInterrupt


def _fit(backup_dir, criterion: str, interrupt_after: int | None = None,
         save_freq='epoch', batch: int | None = None):
  """3 epochs of gradual pruning with BackupAndRestore; the model's weights at the end."""
  model = keras3_checks.compiled(keras3_checks.cnn())
  x, y = keras3_checks.data(96)
  schedule = tfk.PolynomialDecay(0.0, 0.6, begin_step=0, end_step=12,
                                 frequency=3)
  callbacks = [tfk.Pruning(schedule, criterion),
               keras.callbacks.BackupAndRestore(str(backup_dir),
                                                save_freq=save_freq)]
  if interrupt_after:
    callbacks.append(_Interrupt(interrupt_after, batch))
  model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
            callbacks=callbacks)
  return [np.array(w) for w in model.get_weights()], callbacks[0].pruner


@pytest.mark.parametrize('criterion, after', [('weight', 1), ('unit', 2)])
def test_killed_and_resumed_run_is_bit_exact(criterion, after, tmp_path):
  want, pruner = _fit(tmp_path / 'uninterrupted', criterion)
  assert pruner.step_count == 18
  with pytest.raises(KeyboardInterrupt):
    _fit(tmp_path / 'resumed', criterion, interrupt_after=after)
  got, resumed = _fit(tmp_path / 'resumed', criterion)  # a new model and pruner
  assert resumed.step_count == 18
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)
  # The masks and counters were restored, not recomputed from scratch.
  assert resumed.sparsity() == pruner.sparsity()


def test_resume_from_a_mid_epoch_checkpoint_is_refused(tmp_path):
  """BackupAndRestore(save_freq=4) last saved after step 8 (batch 2 of epoch
  2); Keras would restart epoch 2 at its first batch, training batches 1-2
  twice."""
  with pytest.raises(KeyboardInterrupt):
    _fit(tmp_path, 'weight', interrupt_after=2, save_freq=4, batch=5)
  with pytest.raises(TfpruneError, match='written after training step 8, but '
                     r'fit restarts at step 6 \(epoch 2, batch 1\)'):
    _fit(tmp_path, 'weight', save_freq=4)
  # Every 6 batches (an epoch) is refused too: Keras writes the checkpoint at
  # epoch 1's last batch, before the epoch counts as done, and would train
  # epoch 1 again.
  with pytest.raises(KeyboardInterrupt):
    _fit(tmp_path / 'six', 'weight', interrupt_after=2, save_freq=6, batch=5)
  with pytest.raises(TfpruneError, match='after training step 6, but fit '
                     r'restarts at step 0 \(epoch 1, batch 1\)'):
    _fit(tmp_path / 'six', 'weight', save_freq=6)


def test_resume_without_pruning_state_differs(tmp_path):
  """Control: the same interruption with the masks dropped from the checkpoint ends elsewhere."""
  want, _ = _fit(tmp_path / 'uninterrupted', 'weight')
  with pytest.raises(KeyboardInterrupt):
    _fit(tmp_path / 'resumed', 'weight', interrupt_after=1)
  model = keras3_checks.compiled(keras3_checks.cnn())
  x, y = keras3_checks.data(96)
  schedule = tfk.PolynomialDecay(0.0, 0.6, begin_step=0, end_step=12,
                                 frequency=3)
  # Restored before pruning is attached: the masks and steps start afresh.
  model.optimizer.build(model.trainable_variables)
  model.load_weights(tmp_path / 'resumed' / 'latest.weights.h5',
                     skip_mismatch=True)
  model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
            callbacks=[tfk.Pruning(schedule)])
  got = model.get_weights()
  assert any(not np.array_equal(a, b) for a, b in zip(got, want))


def test_bad_input_is_refused():
  model = keras3_checks.cnn()
  schedule = tfk.ConstantSparsity(0.5, 0)
  with pytest.raises(TfpruneError, match='unknown pruning criterion'):
    tfk.Pruner(model, schedule, 'magnitude')
  with pytest.raises(TfpruneError, match='not a multiple of frequency'):
    tfk.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=95, frequency=10)
  with pytest.raises(TfpruneError, match=r'final_sparsity must be in \[0, 1\)'):
    tfk.PolynomialDecay(0.0, 90, begin_step=0, end_step=100)
  with pytest.raises(TfpruneError, match='drop allocation and pattern'):
    tfk.Pruner(model, schedule, 'unit', pattern='2:4')
  with pytest.raises(TfpruneError, match='not a Keras 3 model'):
    from tfprune.keras_compat import keras as tf_keras  # pylint: disable=g-import-not-at-top
    tfk.Pruner(tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)]),
               schedule)
  with pytest.raises(TfpruneError, match='schedule must be'):
    tfk.Pruning('polynomial')
  with pytest.raises(TfpruneError, match='not a prunable layer'):
    tfk.Pruner(model, schedule, layers=['nope'])


@pytest.mark.parametrize('schedule', [
    ('ConstantSparsity', dict(target_sparsity=0.7, begin_step=3, end_step=21,
                              frequency=6)),
    ('ConstantSparsity', dict(target_sparsity=0.5, begin_step=0, end_step=-1,
                              frequency=4)),
    ('PolynomialDecay', dict(initial_sparsity=0.1, final_sparsity=0.95,
                             begin_step=2, end_step=32, frequency=5)),
])
def test_schedules_follow_tfmot(schedule):
  """Same update steps and sparsities as TF-MOT's schedules (float32 there)."""
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  name, args = schedule
  ours = getattr(tfk, name)(**args)
  theirs = getattr(tfmot.sparsity.keras, name)(**args)
  for step in range(1, 45):
    should, sparsity = theirs(step)
    assert ours.prunes_at(step) == bool(should), step
    assert ours.sparsity(step) == pytest.approx(float(sparsity), abs=1e-6)


def _engine_run(tmp_path, interrupt_after: int | None = None):
  """`--engine=keras`'s training of a graph (the CNN), 3 epochs of unit pruning."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfprune  # pylint: disable=g-import-not-at-top
  from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
  from tfprune.keras import study  # pylint: disable=g-import-not-at-top
  from tfprune.training import gradual  # pylint: disable=g-import-not-at-top
  graph = tfprune.from_keras(keras3_checks.cnn())
  train = datasets.Split(*keras3_checks.data(64))
  test = datasets.Split(*keras3_checks.data(32, seed=1))
  run = gradual.PruningRun('gradual', 'unit', 0.5, epochs=3, batch_size=16,
                           learning_rate=1e-3)
  names = [n.name for n in graph.weighted()][:-1]
  more = [_Interrupt(interrupt_after)] if interrupt_after else []
  return study.train(run, graph, names, train, test, tf.distribute.get_strategy(),
                     tmp_path, verbose=0, callbacks=more)


def test_keras_engine_resumes_bit_exact_and_compacts(tmp_path):
  want = _engine_run(tmp_path / 'whole')
  with pytest.raises(KeyboardInterrupt):
    _engine_run(tmp_path / 'cut', interrupt_after=1)
  got = _engine_run(tmp_path / 'cut')
  for a, b in zip(got.graph.nodes, want.graph.nodes):
    for param in a.params:
      np.testing.assert_array_equal(a.params[param], b.params[param])
  assert (tmp_path / 'cut' / 'epochs.csv').read_text() == (
      tmp_path / 'whole' / 'epochs.csv').read_text()
  assert not (tmp_path / 'cut' / 'backup').exists()
  assert [l.zeros for l in got.layers] == [l.required for l in got.layers]
  assert got.compacted.node('conv1').params['kernel'].shape == (3, 3, 1, 4)
  assert got.compacted.node('pw').params['kernel'].shape == (1, 1, 4, 6)


def test_gradual_study_with_the_keras_engine(tmp_path, mnist_slice_dir):
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tfprune.drivers import gradual_study  # pylint: disable=g-import-not-at-top
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, procedures=('gradual', 'iterative'),
      targets=(90,), epochs=1, cycles=1, cycle_epochs=1, train_limit=128,
      batch_size=32,
      export_tflite=False, engine='keras')
  study = gradual_study.run(config, verbose=0)
  for row in study.results:
    assert row.layer_sparsity == '90.00/90.00/90.00/90.00', row
  saved = json.loads((tmp_path / 'out' / gradual_study.CONFIG_NAME).read_text())
  assert saved['engine'] == 'keras' and saved['config']['engine'] == 'keras'
  with pytest.raises(TfpruneError, match='unknown engine'):
    gradual_study.GradualConfig(out_dir='x', weights_dir='w', engine='tfmot2')


def _mnist_cnn():
  """A small MNIST CNN with DepthwiseConv2D and BatchNormalization."""
  keras.utils.set_random_seed(0)
  L = keras.layers

  def bn(x, name):  # momentum 0.8: the statistics settle within the slice's steps
    return L.ReLU()(L.BatchNormalization(momentum=0.8, name=name)(x))
  inp = keras.Input((28, 28, 1))
  x = bn(L.Conv2D(16, 3, strides=2, padding='same', name='conv1')(inp), 'bn1')
  x = bn(L.DepthwiseConv2D(3, padding='same', name='dw')(x), 'bn2')
  x = bn(L.Conv2D(32, 1, name='pw')(x), 'bn3')
  x = bn(L.DepthwiseConv2D(3, strides=2, padding='same', name='dw2')(x), 'bn4')
  out = L.Dense(10, name='out')(L.Flatten()(x))
  return keras3_checks.compiled(keras.Model(inp, out))


def test_cnn_pruned_compacted_and_reloaded_without_tfprune(tmp_path,
                                                           mnist_slice_dir):
  """Weight pruning to 80% (depthwise kernels too) and unit pruning to 50%,
  fine-tuned on MNIST, saved, reloaded by plain Keras in a fresh process:
  the same outputs, so the same accuracy."""
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tfprune.criteria import pruning  # pylint: disable=g-import-not-at-top
  from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
  train = datasets.load('mnist', 'train', mnist_slice_dir)
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  np.save(tmp_path / 'x.npy', test.images)
  jobs, accuracy = [], {}
  for criterion, target in (('weight', 0.8), ('unit', 0.5)):
    model = _mnist_cnn()
    model.fit(train.images, train.labels, batch_size=32, epochs=3, verbose=0)
    schedule = tfk.PolynomialDecay(0.0, target, begin_step=0, end_step=16,
                                   frequency=4)
    model.fit(train.images, train.labels, batch_size=32, epochs=2, verbose=0,
              callbacks=[tfk.Pruning(schedule, criterion)])
    if criterion == 'weight':
      final = tfk.strip_pruning(model)
      for name, (zeros, size) in tfk.kernel_sparsity(final).items():
        want = 0 if name == 'out/kernel' else pruning.prune_count(80, size)
        assert zeros == want, name
    else:
      final = tfk.compact(model)
      widths = {l.name: l.get_weights()[0].shape for l in final.layers
                if l.name in ('conv1', 'dw', 'pw', 'dw2')}
      assert widths == {'conv1': (3, 3, 1, 8), 'dw': (3, 3, 8, 1),
                        'pw': (1, 1, 8, 16), 'dw2': (3, 3, 16, 1)}, widths
    final.save(tmp_path / f'{criterion}.keras')
    logits = keras.ops.convert_to_numpy(final(test.images, training=False))
    accuracy[criterion] = np.mean(np.argmax(logits, 1) == test.labels)
    jobs.append((criterion, tmp_path / f'{criterion}.keras', tmp_path / 'x.npy'))
    assert accuracy[criterion] > 0.5, accuracy  # it learned (1,000 test images)
  fresh = helpers.load_in_fresh_process('keras3', jobs)
  assert not fresh['tfprune_imported']
  for criterion, _, _ in jobs:
    outputs = np.asarray(fresh['models'][criterion]['outputs'])
    assert np.mean(np.argmax(outputs, 1) == test.labels) == accuracy[criterion]
    assert all(m.startswith('keras.') for m in
               fresh['models'][criterion]['layer_modules'])
