"""The pure-tensor feed-forward evaluator: logits and accuracy of a `Network`.

Computes `relu(x @ W + b)` layer by layer with TensorFlow tensors inside one
`tf.function`, over batches of the data; no Keras model is built. With
`use_biases=False` it reproduces the original pruning project's evaluation,
which ignored the biases.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.network import Network

DEFAULT_BATCH_SIZE = 10_000


@tf.function(reduce_retracing=True)
def _logits(x, kernels, biases):
  h = x
  last = len(kernels) - 1
  for i, kernel in enumerate(kernels):
    h = tf.matmul(h, kernel)
    if biases:
      h = h + biases[i]
    if i < last:
      h = tf.nn.relu(h)
  return h


def flatten_inputs(images: np.ndarray, input_dim: int) -> np.ndarray:
  """Images as a float32 (n, input_dim) array.

  Raises:
    TfpruneError: the images do not have `input_dim` values each.
  """
  x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
  if x.shape[1] != input_dim:
    raise TfpruneError(
        f'the network takes {input_dim} inputs but the images have '
        f'{x.shape[1]} values: use weights trained on this dataset')
  return x


def _batches(network: Network, images: np.ndarray, use_biases: bool,
             batch_size: int):
  if batch_size < 1:
    raise TfpruneError(f'batch_size must be at least 1, got {batch_size}')
  x = flatten_inputs(images, network.input_dim)
  kernels = [tf.constant(k) for k in network.kernels]
  biases = [tf.constant(b) for b in network.biases] if use_biases else []
  for start in range(0, len(x), batch_size):
    yield start, _logits(tf.constant(x[start:start + batch_size]), kernels, biases)


def logits(network: Network, images: np.ndarray, use_biases: bool = True,
           batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Pre-softmax outputs of `network` on `images`, shape (n, classes).

  Args:
    network: the (possibly pruned) weights.
    images: array (n, ...) flattened to (n, network.input_dim).
    use_biases: add the biases (False reproduces the original project).
    batch_size: examples per forward pass.
  """
  out = np.empty((len(images), network.output_dim), dtype=np.float32)
  for start, batch in _batches(network, images, use_biases, batch_size):
    out[start:start + len(batch)] = batch.numpy()
  return out


def accuracy(network: Network, images: np.ndarray, labels: np.ndarray,
             use_biases: bool = True,
             batch_size: int = DEFAULT_BATCH_SIZE) -> float:
  """Fraction of `images` whose arg-max output equals `labels`."""
  if len(images) != len(labels) or not len(labels):
    raise TfpruneError(
        f'{len(images)} images and {len(labels)} labels: give one label per '
        'image, at least one')
  labels = tf.constant(np.asarray(labels, dtype=np.int64))
  correct = 0
  for start, batch in _batches(network, images, use_biases, batch_size):
    predicted = tf.argmax(batch, axis=1)
    correct += int(tf.reduce_sum(tf.cast(
        predicted == labels[start:start + batch.shape[0]], tf.int32)))
  return correct / len(images)
