"""Compiling and measuring a Keras classifier: kernels, loss, (loss, accuracy)."""

import weakref
from typing import Callable

import tensorflow as tf

from tfprune.data import datasets
from tfprune.keras_compat import keras

EVAL_BATCH = 1000
_EVALUATORS: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def kernels(model: keras.Model) -> list[tf.Variable]:
  """The kernels of the model's Dense and Conv2D layers, in order."""
  return [l.kernel for l in model.layers
          if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))]


def loss_for(model: keras.Model) -> keras.losses.Loss:
  """Cross-entropy on the outputs: as probabilities after softmax, else logits.

  Treating any other output (tanh) as logits is what PyTorch's
  `CrossEntropyLoss` does, as in the penguins reference.
  """
  last = model.layers[-1].activation.__name__
  return keras.losses.SparseCategoricalCrossentropy(from_logits=last != 'softmax')


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
  """Compiles with a fresh Adam, `loss_for(model)` and accuracy."""
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=loss_for(model), metrics=['accuracy'])
  return model


def evaluator(model: keras.Model) -> Callable[[datasets.Split], tuple[float, float]]:
  """A compiled measure of (mean loss, accuracy) of `model` on a split.

  One per model (cached), so that its graph is traced once.
  """
  if model not in _EVALUATORS:
    _EVALUATORS[model] = _make_evaluator(model)
  return _EVALUATORS[model]


def _make_evaluator(model: keras.Model):
  from_logits = loss_for(model).get_config()['from_logits']

  @tf.function(reduce_retracing=True)
  def sums(x, y):
    out = model(x, training=False)
    losses = keras.losses.sparse_categorical_crossentropy(
        y, out, from_logits=from_logits)
    hits = tf.cast(tf.equal(tf.argmax(out, axis=-1), y), tf.float64)
    return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.reduce_sum(hits)

  def measure(split: datasets.Split) -> tuple[float, float]:
    loss = hits = 0.0
    for start in range(0, len(split), EVAL_BATCH):
      l, h = sums(tf.constant(split.images[start:start + EVAL_BATCH]),
                  tf.constant(split.labels[start:start + EVAL_BATCH]))
      loss, hits = loss + float(l), hits + float(h)
    return loss / len(split), hits / len(split)

  return measure
