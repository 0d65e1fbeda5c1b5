"""A gradual run interrupted and resumed ends exactly where the uninterrupted run ends.

Every procedure and granularity, on an MLP and on a small CNN with a
depthwise conv and batch norm (both as graphs, `graph_gradual.train`), both
with dropout: the run is cut off after an epoch (or in the middle of one) by a
callback raising KeyboardInterrupt, run again with the same arguments, and
compared with the same run uninterrupted: every weight bit for bit, the epoch
log byte for byte. The study-level tests do the same through
`gradual_study.run` and compare the files it writes. Training itself is
unchanged: `resumable.fit` trains on the batches `Model.fit` draws for arrays.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfprune.criteria import graph_pruning
from tfprune.data import datasets
from tfprune.graph import io as graph_io
from tfprune.keras_compat import keras
from tfprune.keras_io import importer
from tfprune.drivers import gradual_config
from tfprune.drivers import gradual_study
from tfprune.training import epoch_log
from tfprune.training import gradual
from tfprune.training import graph_gradual
from tfprune.training import resumable

STRATEGY = tf.distribute.get_strategy()
SEED = 3
KINDS = [(p, g) for p in gradual.PROCEDURES for g in gradual.GRANULARITIES]


class Interrupt(keras.callbacks.Callback):
  """Raises KeyboardInterrupt at the end of epoch `epoch` (0-based), or of its batch `batch`."""

  def __init__(self, epoch, batch=None):
    super().__init__()
    self.epoch, self.batch = epoch, batch
    self.current = None

  def on_epoch_begin(self, epoch, logs=None):
    self.current = epoch

  def on_train_batch_end(self, batch, logs=None):
    if self.current == self.epoch and batch == self.batch:
      raise KeyboardInterrupt('simulated interruption')

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch and self.batch is None:
      raise KeyboardInterrupt('simulated interruption')


class Epochs(keras.callbacks.Callback):
  """Records the epochs a fit trains."""

  def __init__(self):
    super().__init__()
    self.seen = []

  def on_epoch_begin(self, epoch, logs=None):
    self.seen.append(epoch)


def run_of(procedure, granularity, batch_size):
  """3 epochs either way (gradual: 3 epochs; iterative: 3 cycles of 1)."""
  return gradual.PruningRun(procedure, granularity, 0.6, epochs=3, cycles=3,
                            cycle_epochs=1, batch_size=batch_size,
                            learning_rate=3e-3)


def mlp_with_dropout():
  return keras.Sequential([
      keras.Input(shape=(28, 28, 1)), keras.layers.Flatten(),
      keras.layers.Dense(16, activation='relu', name='dense_1'),
      keras.layers.Dropout(0.3),
      keras.layers.Dense(12, activation='relu', name='dense_2'),
      keras.layers.Dropout(0.3),
      keras.layers.Dense(10, activation='softmax', name='dense_3')])


def cnn_with_dropout():
  """Conv, depthwise conv (masked by tfprune, not TF-MOT), batch norm, dropout."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input(shape=(8, 8, 3))
  x = keras.layers.Conv2D(8, 3, padding='same', activation='relu',
                          name='conv1')(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding='same', name='dw')(x)
  x = keras.layers.BatchNormalization(name='bn')(x)
  x = keras.layers.ReLU(name='relu')(x)
  x = keras.layers.Conv2D(8, 1, activation='relu', name='conv2')(x)
  x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
  x = keras.layers.Dropout(0.3, name='drop')(x)
  outputs = keras.layers.Dense(5, activation='softmax', name='out')(x)
  return keras.Model(inputs, outputs)


def cnn_split(n, seed):
  rng = np.random.default_rng(seed)
  return datasets.Split(rng.standard_normal((n, 8, 8, 3)).astype(np.float32),
                        rng.integers(0, 5, n).astype(np.int64))


@pytest.fixture(scope='module')
def cnn_graph():
  return importer.from_keras(cnn_with_dropout(), data=cnn_split(16, 1).images)


def _train_mlp(run, work_dir, callbacks=()):
  work_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(SEED)
  graph = importer.from_keras(mlp_with_dropout(),
                              data=helpers.tiny_split().images[:16])
  trained = graph_gradual.train(run, graph, graph_pruning.prunable(graph),
                                helpers.tiny_split(),
                                helpers.tiny_split(64, seed=1), STRATEGY,
                                work_dir, verbose=0, callbacks=callbacks)
  return trained.model.get_weights()


def _train_cnn(graph, run, work_dir, callbacks=()):
  work_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(SEED)
  names = graph_pruning.prunable(graph, None, False)
  trained = graph_gradual.train(run, graph, names, cnn_split(96, 0),
                                cnn_split(32, 1), STRATEGY, work_dir, verbose=0,
                                callbacks=callbacks)
  return [v for node in trained.graph.nodes for _, v in sorted(node.params.items())]


def _assert_same_bits(want, got):
  assert len(want) == len(got)
  for a, b in zip(want, got):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _interrupted_then_resumed(train, work_dir, stop):
  with pytest.raises(KeyboardInterrupt):
    train(work_dir, [Interrupt(*stop)])
  assert (work_dir / resumable.BACKUP_NAME).is_dir()
  finished = stop[0] if len(stop) > 1 else stop[0] + 1
  assert len(epoch_log.read(work_dir / epoch_log.LOG_NAME)) == (
      stop[0] + 1 if len(stop) == 1 else stop[0])
  epochs = Epochs()
  weights = train(work_dir, [epochs])
  assert epochs.seen == list(range(finished, 3))  # finished epochs not redone
  assert not (work_dir / resumable.BACKUP_NAME).exists()
  return weights


# (epoch, [batch]): after epoch 1, after epoch 2, in the middle of epoch 2.
STOPS = {('gradual', 'weight'): (1,), ('gradual', 'unit'): (0,),
         ('iterative', 'weight'): (1, 3), ('iterative', 'unit'): (1,)}


@pytest.fixture(scope='module')
def mlp_straight(tmp_path_factory):
  """The uninterrupted MLP run of a (procedure, granularity), trained once.

  A function returning its weights and the folder holding its epoch log; the
  tests only read them.
  """
  done = {}

  def straight(procedure, granularity):
    if (procedure, granularity) not in done:
      work_dir = tmp_path_factory.mktemp(f'straight-{procedure}-{granularity}')
      run = run_of(procedure, granularity, batch_size=32)
      done[procedure, granularity] = _train_mlp(run, work_dir), work_dir
    return done[procedure, granularity]
  return straight


@pytest.mark.parametrize('procedure, granularity', KINDS)
def test_resumed_mlp_run_equals_the_uninterrupted_one(procedure, granularity,
                                                      mlp_straight, tmp_path):
  run = run_of(procedure, granularity, batch_size=32)
  train = lambda work_dir, callbacks=(): _train_mlp(run, work_dir, callbacks)
  want, straight_dir = mlp_straight(procedure, granularity)
  got = _interrupted_then_resumed(train, tmp_path / 'resumed',
                                  STOPS[procedure, granularity])
  _assert_same_bits(want, got)
  assert ((straight_dir / epoch_log.LOG_NAME).read_bytes() ==
          (tmp_path / 'resumed' / epoch_log.LOG_NAME).read_bytes())
  # Seconds are kept beside the log, one entry per epoch.
  assert sorted(epoch_log.read_seconds(
      tmp_path / 'resumed' / epoch_log.TIMING_NAME)) == [1, 2, 3]


@pytest.mark.parametrize('procedure, granularity', KINDS)
def test_resumed_graph_run_equals_the_uninterrupted_one(procedure, granularity,
                                                        cnn_graph, tmp_path):
  run = run_of(procedure, granularity, batch_size=16)
  train = lambda work_dir, callbacks=(): _train_cnn(cnn_graph, run, work_dir,
                                                    callbacks)
  want = train(tmp_path / 'straight')
  got = _interrupted_then_resumed(train, tmp_path / 'resumed',
                                  STOPS[procedure, granularity])
  _assert_same_bits(want, got)
  assert ((tmp_path / 'straight' / epoch_log.LOG_NAME).read_bytes() ==
          (tmp_path / 'resumed' / epoch_log.LOG_NAME).read_bytes())


def _replay_from_epoch_0(epoch_batches):
  """`epoch_batches` as `Model.fit` on arrays resumed: epoch 0's order first."""
  return lambda split, batch_size, epochs, first_epoch: epoch_batches(
      split, batch_size, epochs - first_epoch, 0)


@pytest.mark.parametrize('lost', ['dropout state', 'data order'])
def test_each_restored_state_matters(lost, mlp_straight, tmp_path, monkeypatch):
  """Without either piece of restored state, the resumed run differs."""
  run = run_of('gradual', 'weight', batch_size=32)
  train = lambda work_dir, callbacks=(): _train_mlp(run, work_dir, callbacks)
  want, _ = mlp_straight('gradual', 'weight')
  if lost == 'dropout state':
    monkeypatch.setattr(resumable, 'generators', lambda model: [])
  else:
    monkeypatch.setattr(resumable, 'epoch_batches',
                        _replay_from_epoch_0(resumable.epoch_batches))
  got = _interrupted_then_resumed(train, tmp_path / 'resumed', (1,))
  assert any(a.tobytes() != b.tobytes() for a, b in zip(want, got))


@pytest.mark.parametrize('first_epoch', [0, 1, 2])
def test_epoch_batches_are_model_fits_batches_from_that_epoch_on(first_epoch):
  split = datasets.Split(np.arange(10, dtype=np.float32).reshape(10, 1),
                         np.arange(10))
  def labels(first):
    keras.utils.set_random_seed(SEED)
    batches, steps = resumable.epoch_batches(split, 4, 3, first)
    assert steps == 3
    return [int(v) for _, y in batches for v in y.numpy()]
  every = labels(0)
  assert len(every) == 30 and every[:10] != every[10:20]  # reshuffled per epoch
  assert sorted(every[:10]) == list(range(10))
  assert labels(first_epoch) == every[10 * first_epoch:]


def test_uninterrupted_training_is_plain_model_fit(tmp_path):
  """`resumable.fit` computes exactly what `Model.fit(arrays, shuffle=True)` does."""
  split, test = helpers.tiny_split(), helpers.tiny_split(64, seed=1)

  def trained(use_resumable, work_dir=None):
    keras.utils.set_random_seed(SEED)
    model = helpers.tiny_classifier()
    model.compile(keras.optimizers.Adam(1e-2), 'sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    if use_resumable:
      history = resumable.fit(model, split, test, batch_size=48, epochs=3,
                              work_dir=work_dir, verbose=0).history
    else:
      history = model.fit(split.images, split.labels, batch_size=48, epochs=3,
                          validation_data=(test.images, test.labels),
                          verbose=0).history
    return model.get_weights(), history

  want, want_history = trained(False)
  got, got_history = trained(True, tmp_path)
  _assert_same_bits(want, got)
  assert want_history == got_history
  assert not (tmp_path / resumable.BACKUP_NAME).exists()


# --- through the study: the files written ------------------------------------

def _files(out_dir):
  """Every file of a study but the seconds and TensorBoard logs, by relative path."""
  return {p.relative_to(out_dir).as_posix(): p for p in sorted(out_dir.rglob('*'))
          if p.is_file() and p.name != gradual_study.TIMING_NAME
          and 'tensorboard' not in p.parts}


def _assert_same_study(straight, resumed):
  want, got = _files(straight), _files(resumed)
  assert sorted(want) == sorted(got)
  for name, path in want.items():
    if name == gradual_study.CONFIG_NAME:  # records out_dir
      a, b = (json.loads(p.read_text()) for p in (path, got[name]))
      a['config'].pop('out_dir'), b['config'].pop('out_dir')
      assert a == b
    elif path.suffix in ('.npz', '.keras'):  # zip members carry a timestamp
      continue
    else:
      assert path.read_bytes() == got[name].read_bytes(), name
  for name in (n for n in want if n.endswith('.npz')):
    a, b = graph_io.load(want[name]), graph_io.load(got[name])
    assert a.metadata == b.metadata
    for x, y in zip(a.nodes, b.nodes):
      assert x.name == y.name and sorted(x.params) == sorted(y.params)
      for p in x.params:
        assert x.params[p].tobytes() == y.params[p].tobytes(), (name, x.name, p)


def _interrupt_run(monkeypatch, run_number, stop):
  """Makes the `run_number`-th training run of a study stop at `stop`."""
  fit, calls = resumable.fit, []

  def interrupted_fit(*args, more_callbacks=(), **kwargs):
    calls.append(1)
    extra = [Interrupt(*stop)] if len(calls) == run_number else []
    return fit(*args, more_callbacks=[*more_callbacks, *extra], **kwargs)
  monkeypatch.setattr(resumable, 'fit', interrupted_fit)


def _study_in_a_new_process(config):
  """`gradual_study.run` as a command runs it: in a process that built no
  model before (Keras numbers unnamed layers, such as a registry model's
  input, by the models built before them)."""
  keras.backend.clear_session()
  return gradual_study.run(config, command='pytest', verbose=0)


def _study_twice(config, tmp_path, monkeypatch, run_number, stop):
  straight = _study_in_a_new_process(config)
  resumed_config = dataclasses.replace(config, out_dir=str(tmp_path / 'resumed'))
  with monkeypatch.context() as patch:
    _interrupt_run(patch, run_number, stop)
    with pytest.raises(KeyboardInterrupt):
      _study_in_a_new_process(resumed_config)
  assert not (tmp_path / 'resumed' / gradual_study.RESULTS_NAME).exists()
  resumed = _study_in_a_new_process(resumed_config)
  assert resumed.results == straight.results
  _assert_same_study(pathlib.Path(config.out_dir), tmp_path / 'resumed')
  return pathlib.Path(config.out_dir)


def test_resumed_mlp_study_writes_the_same_files(tmp_path, monkeypatch,
                                                mnist_slice_dir):
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'straight'), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, targets=(90,), epochs=2, cycles=2, cycle_epochs=1,
      train_limit=256, export_tflite=False)
  out = _study_twice(config, tmp_path, monkeypatch, run_number=2, stop=(0,))
  header = (out / gradual_study.RESULTS_NAME).read_text().splitlines()[0]
  assert header.split(',') == list(gradual_study.RESULT_COLUMNS)
  assert 'seconds' not in header
  timing = json.loads((out / gradual_study.TIMING_NAME).read_text())
  assert sorted(timing['train_seconds']) == ['gradual-weight-90',
                                             'iterative-weight-90']
  assert all(s > 0 for s in timing['train_seconds'].values())
  assert 'seconds' not in (out / 'runs' / 'gradual-weight-90' / 'weights' /
                           'manifest.json').read_text()


def test_resumed_graph_study_writes_the_same_files(tmp_path, monkeypatch):
  model_path = tmp_path / 'cnn.keras'
  cnn_with_dropout().save(model_path)
  train, test = cnn_split(96, 0), cnn_split(32, 1)
  np.savez(tmp_path / 'cnn.npz', x_train=train.images, y_train=train.labels,
           x_test=test.images, y_test=test.labels)
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'straight'), weights_dir=None,
      model_file=str(model_path), data=str(tmp_path / 'cnn.npz'),
      procedures=('gradual',), granularity='unit', targets=(50,), epochs=3,
      batch_size=16, learning_rate=3e-3, export_tflite=False)
  out = _study_twice(config, tmp_path, monkeypatch, run_number=1, stop=(1,))
  run_dir = out / 'runs' / 'gradual-unit-50'
  assert (run_dir / gradual_study.COMPACT_NAME).is_file()
  metadata = graph_io.load(run_dir / gradual_study.GRAPH_NAME).metadata
  assert 'train_seconds' not in metadata['pruning']


def test_a_result_of_an_older_version_still_reads(tmp_path):
  record = {'procedure': 'gradual', 'granularity': 'weight', 'target': 90.0,
            'sparsity': 0.9, 'accuracy': 0.98, 'keras_accuracy': 0.98,
            'tflite_accuracy': None, 'nonzero_params': 10, 'tflite_bytes': None,
            'tflite_dense_bytes': None, 'epochs': 8, 'seconds': 505.2,
            'layer_sparsity': '90.00'}
  (tmp_path / 'result.json').write_text(json.dumps(record))
  result = gradual_study.read_result(tmp_path / 'result.json')
  assert result.epochs == 8 and not hasattr(result, 'seconds')


def test_committed_results_hold_no_seconds():
  for study in sorted((helpers.REPO / 'img').glob('gradual*')):
    header = (study / gradual_study.RESULTS_NAME).read_text().splitlines()[0]
    assert header.split(',') == list(gradual_study.RESULT_COLUMNS), study
    timing = json.loads((study / gradual_study.TIMING_NAME).read_text())
    assert len(timing['train_seconds']) == len(helpers.read_csv(
        study / gradual_study.RESULTS_NAME))
    for log in study.glob('runs/*/epochs.csv'):
      assert 'seconds' not in log.read_text().splitlines()[0]
      assert gradual_config.run_seconds(log.parent) == (
          timing['train_seconds'][log.parent.name])
