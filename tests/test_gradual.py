"""Pruning during training: schedules, TF-MOT wrappers, unit masks, resume.

The runs train a small Keras classifier as a graph (`graph_gradual.train`,
the one gradual path).
"""


import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from tests import helpers
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.training import epoch_log
from tfprune.training import gradual
from tfprune.training import graph_gradual
from tfprune.training import schedules
from tfprune.training import tflite

STRATEGY = tf.distribute.get_strategy()
SCHEDULED_KINDS = [('gradual', g, s) for g in gradual.GRANULARITIES
                   for s in gradual.SCHEDULES] + [
                       ('iterative', g, 'polynomial') for g in gradual.GRANULARITIES]


def tiny_run(procedure, granularity, target=0.75, **kwargs):
  """A run of a few steps on `helpers.tiny_split` (8 steps per epoch)."""
  settings = dict(epochs=3, cycles=2, cycle_epochs=2, batch_size=32,
                  learning_rate=1e-3)
  settings.update(kwargs)
  return gradual.PruningRun(procedure, granularity, target, **settings)


def kernels(model, names):
  """The kernel variables of the layers called `names`, wrapped or not."""
  return [build.layer_of(model, n).kernel for n in names]


def train(run, work_dir, make=helpers.tiny_classifier, callbacks=()):
  """`graph_gradual.train` on the graph of `make()`, its hidden layers pruned."""
  graph = importer.from_keras(make(), data=helpers.tiny_split().images[:16])
  names = graph_pruning.prunable(graph, None, run.prune_output_layer)
  return graph_gradual.train(run, graph, names, helpers.tiny_split(),
                             helpers.tiny_split(seed=1), STRATEGY, work_dir,
                             verbose=0, callbacks=callbacks)


class Recorder(keras.callbacks.Callback):
  """Records the non-zero masks of the pruned kernels at each epoch end."""

  def __init__(self, names):
    super().__init__()
    self.names = names
    self.masks = []
    self.epochs = []

  def on_epoch_begin(self, epoch, logs=None):
    self.epochs.append(epoch)

  def on_epoch_end(self, epoch, logs=None):
    self.masks.append([k.numpy() != 0 for k in kernels(self.model, self.names)])


class Interrupt(keras.callbacks.Callback):
  """Stops training with an error at the end of epoch `epoch` (0-based)."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise KeyboardInterrupt('simulated interruption')


# --- schedules ---------------------------------------------------------------

@pytest.mark.parametrize('total', [2, 3, 24, 100, 2814, 28140])
def test_derived_gradual_steps_end_on_the_update_grid(total):
  steps = schedules.plan_gradual(total)
  assert 0 <= steps.begin_step < steps.end_step <= total
  assert (steps.end_step - steps.begin_step) % steps.frequency == 0
  assert steps.end_step <= round(schedules.PRUNING_FRACTION * total) or total < 4


@pytest.mark.parametrize('kwargs, message', [
    (dict(begin_step=50, end_step=50), 'begin_step 50 is not before end_step 50'),
    (dict(begin_step=60, end_step=50), 'begin_step 60 is not before end_step 50'),
    (dict(end_step=101), 'end_step 101 is past the last training step 100'),
    (dict(end_step=50, frequency=7), 'use end_step=49'),
    (dict(begin_step=-1), 'begin_step must be >= 0'),
    (dict(end_step=50, frequency=0), 'frequency must be at least 1'),
    (dict(begin_step=100), 'begin_step 100 leaves no room'),
])
def test_bad_gradual_steps_are_refused(kwargs, message):
  with pytest.raises(TfpruneError, match=message):
    schedules.plan_gradual(100, **kwargs)


@pytest.mark.parametrize('bad', [-0.1, 1.0, 1.5, float('nan'), '0.5', True])
def test_target_sparsity_must_be_a_fraction(bad):
  with pytest.raises(TfpruneError, match=r'must be (a number )?in \[0, 1\)'):
    schedules.check_sparsity(bad)


@pytest.mark.parametrize('target, cycles', [(0.9, 3), (0.99, 3), (0.5, 1), (0.75, 4)])
def test_cycle_sparsities_remove_a_fixed_share_of_what_is_left(target, cycles):
  values = schedules.cycle_sparsities(target, cycles)
  assert values[-1] == pytest.approx(target)
  kept = [1.0] + [1 - s for s in values]
  ratios = [b / a for a, b in zip(kept, kept[1:])]
  assert ratios == pytest.approx([ratios[0]] * cycles)


def test_cycle_schedule_prunes_at_the_first_step_of_each_cycle_only():
  schedule = schedules.CycleSparsity(0.9, cycles=3, cycle_steps=5)
  pruned = [s for s in range(20) if bool(schedule(s)[0])]
  assert pruned == [1, 6, 11]
  assert float(schedule(13)[1]) == pytest.approx(0.9)
  assert float(schedule(5)[1]) == pytest.approx(1 - 0.1 ** (1 / 3))


@pytest.mark.parametrize('size', [1, 10, 784, 1000, 784000])
@pytest.mark.parametrize('sparsity', [0.0, 0.5, 0.9, 0.97, 0.99])
def test_tfmot_count_matches_tfmot_mask(size, sparsity):
  weights = np.random.default_rng(size).normal(size=size).astype(np.float32)
  schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, 0)
  pruning = pruning_impl.Pruning(
      training_step_fn=lambda: 0, pruning_vars=[], pruning_schedule=schedule,
      block_size=(1, 1), block_pooling_type='AVG')
  _, mask = pruning._update_mask(tf.constant(weights))  # pylint: disable=protected-access
  assert size - int(np.sum(mask.numpy())) == schedules.tfmot_pruned_count(
      size, sparsity)


@pytest.mark.parametrize('target', [0.3, 0.5, 0.7, 0.9, 0.95, 0.97, 0.99, 0.999])
def test_schedule_sparsity_reads_back_as_the_exact_percentage(target):
  steps = schedules.plan_gradual(100)
  schedule = schedules.polynomial(target, steps)
  _, sparsity = schedule(steps.end_step)
  percent = gradual.as_percent(sparsity)
  assert percent == pytest.approx(100 * target, abs=1e-9)
  assert pruning.prune_count(percent, 1000) == round(1000 * target)


# --- training runs -----------------------------------------------------------

@pytest.mark.parametrize('procedure, granularity, schedule', SCHEDULED_KINDS)
def test_run_reaches_exact_target_sparsity(procedure, granularity, schedule,
                                           tmp_path):
  run = tiny_run(procedure, granularity, schedule=schedule)
  trained = train(run, tmp_path)
  for layer, kernel in zip(trained.layers, kernels(
      trained.model, ['dense_1', 'dense_2'])):
    w = kernel.numpy()
    if granularity == 'weight':
      assert layer.zeros == schedules.tfmot_pruned_count(w.size, 0.75)
    else:
      dead = np.all(w == 0, axis=0)
      assert int(dead.sum()) == w.shape[1] * 3 // 4
      assert layer.zeros == int(dead.sum()) * w.shape[0]
  output = trained.model.get_layer('dense_3').kernel.numpy()
  assert np.all(output != 0)  # the output layer is not pruned by default
  rows = epoch_log.read(tmp_path / 'epochs.csv')
  assert [int(r['epoch']) for r in rows] == list(range(1, run.total_epochs + 1))
  assert float(rows[-1]['sparsity']) == pytest.approx(
      sum(l.zeros for l in trained.layers) / sum(l.size for l in trained.layers))
  assert not (tmp_path / 'backup').exists()


@pytest.mark.parametrize('granularity', gradual.GRANULARITIES)
def test_iterative_cycles_only_remove_weights_and_keep_them_zero(granularity,
                                                                tmp_path):
  run = tiny_run('iterative', granularity, target=0.9, cycles=3, cycle_epochs=2)
  recorder = Recorder(['dense_1', 'dense_2'])
  train(run, tmp_path, callbacks=[recorder])
  masks = recorder.masks
  assert len(masks) == 6
  for before, after in zip(masks, masks[1:]):
    for b, a in zip(before, after):
      assert not np.any(a & ~b), 'a pruned weight came back'
  for cycle in range(3):  # fine-tuning inside a cycle changes no mask
    for first, second in zip(masks[2 * cycle], masks[2 * cycle + 1]):
      np.testing.assert_array_equal(first, second)
  kept = [sum(int(m.sum()) for m in epoch) for epoch in masks[::2]]
  assert kept[0] > kept[1] > kept[2]


def _biased_classifier():
  # Non-zero starting biases: with Keras' zero init a kept unit that never
  # activates keeps bias 0, and the last assertion below could not tell.
  model = helpers.tiny_classifier()
  layer = model.get_layer('dense_1')
  layer.bias.assign(np.full(layer.bias.shape, 0.5, np.float32))
  return model


def test_unit_pruning_zeroes_kernel_column_and_bias(tmp_path):
  run = tiny_run('gradual', 'unit', target=0.5)
  trained = train(run, tmp_path, _biased_classifier)
  layer = trained.model.get_layer('dense_1')
  dead = np.all(layer.kernel.numpy() == 0, axis=0)
  assert dead.sum() == 8
  assert np.all(layer.bias.numpy()[dead] == 0)
  assert np.all(layer.bias.numpy()[~dead] != 0)


def test_stripped_model_predicts_exactly_like_the_pruned_one():
  split = helpers.tiny_split()
  model = helpers.tiny_classifier()
  schedule = schedules.polynomial(0.8, schedules.plan_gradual(16))
  wrapped = gradual.wrap(model, ['dense_1', 'dense_2'], schedule)
  wrapped.compile('adam', 'sparse_categorical_crossentropy')
  wrapped.fit(split.images, split.labels, batch_size=32, epochs=2, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  stripped = gradual.strip(wrapped)
  assert not any(isinstance(l, pruning_wrapper.PruneLowMagnitude)
                 for l in stripped.layers)
  assert gradual.sparsity(kernels(stripped, ['dense_1'])) == (
      schedules.tfmot_pruned_count(28 * 28 * 16, 0.8) / (28 * 28 * 16))
  np.testing.assert_array_equal(wrapped.predict(split.images, verbose=0),
                                stripped.predict(split.images, verbose=0))


def test_resume_after_interruption_continues_from_the_last_epoch(tmp_path):
  run = tiny_run('gradual', 'weight', epochs=4)
  with pytest.raises(KeyboardInterrupt):
    train(run, tmp_path, callbacks=[Interrupt(epoch=1)])
  assert [r['epoch'] for r in epoch_log.read(tmp_path / 'epochs.csv')] == ['1', '2']
  recorder = Recorder(['dense_1', 'dense_2'])
  trained = train(run, tmp_path, callbacks=[recorder])
  assert recorder.epochs == [2, 3]  # epochs 1 and 2 (0-based 0, 1) not redone
  rows = epoch_log.read(tmp_path / 'epochs.csv')
  assert [r['epoch'] for r in rows] == ['1', '2', '3', '4']
  assert [int(r['step']) for r in rows] == [8, 16, 24, 32]
  gradual.check_reached(trained.layers, run.target)


def test_missed_target_fails_loudly():
  layers = [gradual.LayerSparsity('dense_1', 100, 89, 90)]
  with pytest.raises(TfpruneError, match='layer dense_1 reached sparsity 89.0000%'):
    gradual.check_reached(layers, 0.9)


def test_a_nan_loss_is_named_as_the_cause_of_a_missed_target():
  layers = [gradual.LayerSparsity('dense_1', 100, 89, 90),
            gradual.LayerSparsity('dense_2', 100, 0, 90, nonfinite=100)]
  with pytest.raises(TfpruneError, match=(
      r'layer dense_2 holds 100 NaN/Inf weights after training: the loss '
      r'became NaN, .* check the training data for NaN/Inf or lower '
      r'--learning_rate')):
    gradual.check_reached(layers, 0.9)


@pytest.mark.parametrize('field, value, message', [
    ('epochs', 0, 'epochs must be at least 1'),
    ('cycles', 0, 'cycles must be at least 1'),
    ('cycle_epochs', 0, 'cycle_epochs must be at least 1'),
    ('procedure', 'oneshot', "unknown procedure 'oneshot'"),
    ('granularity', 'filter', "unknown granularity 'filter'"),
    ('schedule', 'cubic', "unknown schedule 'cubic'"),
    ('target', 1.0, r'must be in \[0, 1\) \(a fraction'),
    ('learning_rate', 0.0, 'learning_rate must be positive'),
])
def test_bad_run_settings_are_refused(field, value, message):
  settings = dict(procedure='gradual', granularity='weight', target=0.5)
  settings[field] = value
  with pytest.raises(TfpruneError, match=message):
    gradual.PruningRun(**settings)


# --- TFLite ------------------------------------------------------------------

def test_tflite_export_predicts_like_keras_and_shrinks_with_sparsity(tmp_path):
  split = helpers.tiny_split()
  model = helpers.tiny_classifier()
  dense_size = len(tflite.convert(model, sparse=False))
  kernel = model.get_layer('dense_1').kernel
  kernel.assign(np.where(np.abs(kernel.numpy()) > np.quantile(
      np.abs(kernel.numpy()), 0.95), kernel.numpy(), 0))
  size = tflite.save(model, tmp_path / 'model.tflite')
  assert size == (tmp_path / 'model.tflite').stat().st_size
  assert size < 0.5 * dense_size
  outputs = tflite.predict((tmp_path / 'model.tflite').read_bytes(), split.images,
                           batch=100)
  helpers.assert_same_up_to_rounding(outputs,
                                     model.predict(split.images, verbose=0))
