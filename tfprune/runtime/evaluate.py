"""The pure-tensor feed-forward evaluator: logits and accuracy of a `Network`.

Computes `relu(x @ W + b)` layer by layer with TensorFlow tensors inside one
`tf.function`, over batches of the data; no Keras model is built. With
`use_biases=False` it reproduces the original pruning project's evaluation,
which ignored the biases. Networks with layer specs (conv, batch norm,
pooling, flatten, global average pooling, residual adds as in ResNet-18; see
`layers`) run through `_spec_forward` instead, one `tf.function` per
architecture.
"""

import functools

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.graph.network import Network

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


@functools.lru_cache(maxsize=32)
def _spec_forward(specs):
  """A tf.function computing the logits of networks with these layer specs.

  Each layer reads the output of its `source` (the network input or an
  earlier layer) and may add the output of its `residual` before its ReLU,
  so sequential CNNs and ResNets run through the same loop.
  """
  last = len(specs) - 1
  sources = layers_lib.sources(specs)

  @tf.function(reduce_retracing=True)
  def forward(x, kernels, biases, norms):
    outputs = [x]  # outputs[j]: the output of 1-based layer j; 0: the input
    for i, spec in enumerate(specs):
      h = outputs[sources[i]]
      if spec.flatten:
        h = tf.reshape(h, (tf.shape(h)[0], -1))
      if spec.global_pool:
        h = tf.reduce_mean(h, axis=(1, 2))
      if spec.kind == 'conv':
        h = tf.nn.conv2d(h, kernels[i], spec.strides, spec.padding.upper())
      else:
        h = tf.matmul(h, kernels[i])
      if biases:
        h = h + biases[i]
      if spec.norm_epsilon is not None:
        gamma, beta, mean, variance = tf.unstack(norms[i])
        h = (h - mean) * (gamma * tf.math.rsqrt(variance + spec.norm_epsilon)) + beta
      if spec.residual is not None:
        h = h + outputs[spec.residual]
      if i < last and spec.relu:
        h = tf.nn.relu(h)
      if spec.pool > 1:
        h = tf.nn.max_pool2d(h, spec.pool, spec.pool, 'VALID')
      outputs.append(h)
    return outputs[-1]

  return forward


def _spec_inputs(network: Network, images: np.ndarray) -> np.ndarray:
  x = np.asarray(images, dtype=np.float32)
  if x.size != len(x) * network.input_dim:
    raise TfpruneError(
        f'the network takes inputs of shape {network.input_shape} but the '
        f'images have shape {x.shape[1:]}: use weights trained on this dataset')
  return x.reshape((len(x),) + network.input_shape)


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
  kernels = [tf.constant(k) for k in network.kernels]
  biases = [tf.constant(b) for b in network.biases] if use_biases else []
  if network.specs is None:
    x = flatten_inputs(images, network.input_dim)
    forward = _logits
    extra = ()
  else:
    x = _spec_inputs(network, images)
    forward = _spec_forward(network.specs)
    # Layers without batch norm get a placeholder the forward pass never reads.
    extra = ([tf.constant(n if n is not None else np.zeros((4, 1), np.float32))
              for n in network.norms],)
  for start in range(0, len(x), batch_size):
    yield start, forward(tf.constant(x[start:start + batch_size]), kernels,
                         biases, *extra)


def logits(network: Network, images: np.ndarray, use_biases: bool = True,
           batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Pre-softmax outputs of `network` on `images`, shape (n, classes).

  Args:
    network: the (possibly pruned) weights.
    images: array (n, ...) flattened to (n, network.input_dim), or reshaped
      to (n, *network.input_shape) for a network with layer specs.
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
