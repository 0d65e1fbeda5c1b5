"""Computes a `Graph` with TensorFlow ops: the pure-tensor evaluator for any network.

Each op of `ops.OPS` has one function here that computes it from its input
tensors, attributes and parameters with the same TensorFlow kernels Keras
uses, so an imported graph reproduces its Keras model to float32 round-off
(checked on every import by `keras_io.verify`).

`Evaluator(graph)` traces one `tf.function` whose arguments are the input
batch and the graph's parameters, so every graph with the same structure and
parameter shapes (every masked variant of a network in a sweep) runs through
the same trace without retracing. Dense nodes on 2-D inputs take the
MLP's dense/CSR rule (`sparse_kernels`): a sparse enough kernel is computed
by TensorFlow's CSR matmul, so the evaluator keeps one trace per tuple of
kernel kinds (a few per structure at most: each large Dense node is dense or
CSR), and builds the CSR operands once per `predict`, not once per chunk.
`Evaluator(graph, allow_sparse=False)` computes every Dense node densely,
with the op Keras uses.
"""

from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph import sparse_kernels
from tfprune.graph.activations import apply_activation
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

DEFAULT_BATCH_SIZE = 500
# Graphs with convolutions run in smaller chunks: a ResNet-18 (width 0.25) on
# 28x28 images took 2x as long per example in chunks of 500 as in chunks of
# 128 on the 2-core VM, its activations no longer fitting in cache. Each
# example's outputs are bitwise the same whatever the chunk (checked on
# LeNet-5, the Fashion CNN and ResNet-18), so results do not depend on it.
CONV_BATCH_SIZE = 128
_CONV_OPS = ('conv2d', 'depthwise_conv2d')


def batch_size_for(graph: Graph) -> int:
  """The evaluator's chunk size for `graph`: smaller for conv graphs."""
  if any(node.op in _CONV_OPS for node in graph.nodes):
    return CONV_BATCH_SIZE
  return DEFAULT_BATCH_SIZE


def _finish(node, p, x):
  if 'bias' in p:
    x = tf.nn.bias_add(x, p['bias'])
  return apply_activation(node.attrs['activation'], x)


def _dense(node, p, xs):
  x = xs[0]
  if x.shape.rank == 2:
    y = tf.matmul(x, p['kernel'])
  else:
    y = tf.tensordot(x, p['kernel'], [[x.shape.rank - 1], [0]])
  return _finish(node, p, y)


def _conv(node, p, xs):
  a = node.attrs
  y = tf.nn.convolution(xs[0], p['kernel'], strides=list(a['strides']),
                        padding=a['padding'].upper(),
                        dilations=list(a['dilation']))
  return _finish(node, p, y)


def _depthwise(node, p, xs):
  a = node.attrs
  y = tf.nn.depthwise_conv2d(xs[0], p['kernel'], strides=[1, *a['strides'], 1],
                             padding=a['padding'].upper(),
                             dilations=list(a['dilation']))
  return _finish(node, p, y)


def _batch_norm(node, p, xs):
  return tf.nn.batch_normalization(xs[0], p['mean'], p['variance'], p['beta'],
                                   p['gamma'], node.attrs['epsilon'])


def _layer_norm(node, p, xs):
  x = xs[0]
  axes = [a + 1 for a in node.attrs['axes']]
  shape = [1] * x.shape.rank
  for a in axes:
    shape[a] = x.shape[a]
  mean, variance = tf.nn.moments(x, axes=axes, keepdims=True)
  gamma = tf.reshape(p['gamma'], shape) if 'gamma' in p else None
  beta = tf.reshape(p['beta'], shape) if 'beta' in p else None
  return tf.nn.batch_normalization(x, mean, variance, beta, gamma,
                                   node.attrs['epsilon'])


def _normalization(node, p, xs):
  return (xs[0] - p['mean']) / tf.maximum(tf.sqrt(p['variance']),
                                          node.attrs['epsilon'])


def _merge(node, p, xs):
  del p
  mode = node.attrs['mode']
  if mode == 'subtract':
    return xs[0] - xs[1]
  combine = {'add': tf.add, 'average': tf.add, 'multiply': tf.multiply,
             'maximum': tf.maximum, 'minimum': tf.minimum}[mode]
  out = xs[0]
  for x in xs[1:]:
    out = combine(out, x)
  return out / len(xs) if mode == 'average' else out


def _pool(fn):
  def pool(node, p, xs):
    del p
    a = node.attrs
    return fn(xs[0], list(a['pool_size']), list(a['strides']),
              a['padding'].upper())
  return pool


def _global(fn):
  return lambda node, p, xs: fn(xs[0], axis=[1, 2],
                                keepdims=node.attrs['keepdims'])


def _reshape(shape_of):
  return lambda node, p, xs: tf.reshape(xs[0], (-1, *shape_of(node)))


_OPS: dict[str, Callable[[Node, dict, list], tf.Tensor]] = {
    'dense': _dense,
    'conv2d': _conv,
    'depthwise_conv2d': _depthwise,
    'batch_norm': _batch_norm,
    'layer_norm': _layer_norm,
    'normalization': _normalization,
    'rescaling': lambda node, p, xs: xs[0] * p['scale'] + p['offset'],
    'activation': lambda node, p, xs: apply_activation(node.attrs['activation'],
                                                       xs[0]),
    'identity': lambda node, p, xs: xs[0],
    'merge': _merge,
    'concat': lambda node, p, xs: tf.concat(xs, axis=node.attrs['axis'] + 1),
    'max_pool2d': _pool(tf.nn.max_pool2d),
    'avg_pool2d': _pool(tf.nn.avg_pool2d),
    'global_avg_pool2d': _global(tf.reduce_mean),
    'global_max_pool2d': _global(tf.reduce_max),
    'flatten': None,  # reshaped to the node's known output shape below
    'reshape': None,
    'zero_pad2d': lambda node, p, xs: tf.pad(
        xs[0], [[0, 0], *node.attrs['padding'], [0, 0]]),
}
assert set(_OPS) == set(ops.OPS) - {'input'}


def apply_node(graph: Graph, node: Node, params: Mapping,
               inputs: Sequence[tf.Tensor]) -> tf.Tensor:
  """`node`'s output from its input tensors and `params` (tensors or arrays)."""
  fn = _OPS[node.op]
  if fn is None:
    return tf.reshape(inputs[0], (-1, *graph.shapes[node.name]))
  return fn(node, params, list(inputs))


def run_nodes(graph: Graph, x: tf.Tensor,
              params: Mapping[str, Mapping[str, tf.Tensor]],
              keep: Sequence[str] = (),
              csr: Mapping[str, tf.Tensor] | None = None
              ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Computes `graph` on batch `x` with `params` (by node, then by name).

  Args:
    graph: the graph.
    x: the input batch.
    params: the parameters by node, then by name.
    keep: nodes whose outputs to return too.
    csr: the Dense nodes computed by the CSR matmul, their transposed
      kernels as `sparse_kernels.csr_operands` (their `params` need no
      kernel).

  Returns:
    The output, and the outputs of the nodes named in `keep`.
  """
  values = {graph.input.name: x}
  kept = {}
  last_use = {}
  for i, node in enumerate(graph.nodes):
    for source in node.inputs:
      last_use[source] = i
  for i, node in enumerate(graph.nodes[1:], start=1):
    inputs = [values[s] for s in node.inputs]
    if csr and node.name in csr:
      out = _finish(node, params[node.name], sparse_kernels.csr_dense(
          inputs[0], csr[node.name], graph.shapes[node.name][-1]))
    else:
      out = apply_node(graph, node, params.get(node.name, {}), inputs)
    values[node.name] = out
    if node.name in keep:
      kept[node.name] = out
    for source in node.inputs:  # free what no later node reads
      if last_use.get(source) == i and source != graph.output:
        values.pop(source, None)
  return values[graph.output], kept


def _param_tensors(graph: Graph) -> dict[str, dict[str, np.ndarray]]:
  return {n.name: dict(n.params) for n in graph.nodes if n.params}


class Evaluator:
  """Runs every graph shaped like `graph` through a few traced `tf.function`s.

  `predict(x, other)` computes `other` (default: `graph`), which must have
  the same nodes and parameter shapes, e.g. a masked copy, with the kernels
  `kinds(other)` names.
  """

  def __init__(self, graph: Graph, allow_sparse: bool = True):
    self.graph = graph
    self.allow_sparse = allow_sparse
    self._fns = {}

  def kinds(self, graph: Graph | None = None) -> tuple[str, ...]:
    """The kernel of each weighted node (`sparse_kernels.graph_kinds`)."""
    graph = self.graph if graph is None else graph
    return sparse_kernels.graph_kinds(graph, self.allow_sparse)

  def tracing_count(self) -> int:
    """Traces made so far: one per tuple of kinds met, if none retraced."""
    return sum(f.experimental_get_tracing_count() for f in self._fns.values())

  def _fn(self, kinds: tuple[str, ...]):
    """The traced function for one tuple of kernel kinds (made once)."""
    if kinds not in self._fns:
      graph = self.graph
      csr = sorted(n.name for n, kind in zip(graph.weighted(), kinds)
                   if kind == sparse_kernels.CSR)
      signature = (
          tf.TensorSpec((None, *graph.input_shape), tf.float32),
          {name: {k: tf.TensorSpec(v.shape, tf.float32) for k, v in p.items()
                  if not (k == 'kernel' and name in csr)}
           for name, p in _param_tensors(graph).items()},
          {name: sparse_kernels.operand_spec() for name in csr})
      self._fns[kinds] = tf.function(
          lambda x, p, m: run_nodes(graph, x, p, csr=m)[0],
          input_signature=signature, autograph=False)
    return self._fns[kinds]

  def _check(self, other: Graph) -> None:
    if other is self.graph:
      return
    same = len(other.nodes) == len(self.graph.nodes) and all(
        a.name == b.name and a.op == b.op and a.inputs == b.inputs
        and {k: v.shape for k, v in a.params.items()}
        == {k: v.shape for k, v in b.params.items()}
        for a, b in zip(other.nodes, self.graph.nodes))
    if not same:
      raise TfpruneError('this graph differs in structure or shapes from the '
                         "evaluator's: make an Evaluator for it")

  def predict(self, x: np.ndarray, graph: Graph | None = None,
              batch_size: int | None = None) -> np.ndarray:
    """The network's outputs on `x` (batched), as a numpy array.

    Args:
      x: the inputs.
      graph: the graph to compute (default: the evaluator's).
      batch_size: examples per call (default: `batch_size_for(graph)`).
    """
    graph = self.graph if graph is None else graph
    self._check(graph)
    batch_size = batch_size or batch_size_for(graph)
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != graph.input_shape:
      raise TfpruneError(
          f'inputs of shape {x.shape[1:]} but the network takes '
          f'{graph.input_shape}: reshape the data to the model\'s input')
    kinds = self.kinds(graph)
    # Converted once, not at every chunk's call.
    csr = sparse_kernels.csr_operands(graph, kinds)
    params = {name: {k: tf.constant(v) for k, v in p.items()
                     if not (k == 'kernel' and name in csr)}
              for name, p in _param_tensors(graph).items()}
    fn = self._fn(kinds)
    outs = [fn(tf.constant(x[i:i + batch_size]), params, csr).numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros(
        (0, *graph.output_shape), np.float32)

  def accuracy(self, x: np.ndarray, labels: np.ndarray,
               graph: Graph | None = None,
               batch_size: int | None = None) -> float:
    """Top-1 accuracy against integer `labels`."""
    outputs = self.predict(x, graph, batch_size)
    return float(np.mean(np.argmax(outputs.reshape(len(x), -1), axis=1)
                         == np.asarray(labels).reshape(-1)))


def predict(graph: Graph, x: np.ndarray, batch_size: int | None = None,
            allow_sparse: bool = True) -> np.ndarray:
  """`graph`'s outputs on `x`."""
  return Evaluator(graph, allow_sparse).predict(x, batch_size=batch_size)


def node_outputs(graph: Graph, x: np.ndarray,
                 names: Sequence[str]) -> dict[str, np.ndarray]:
  """The outputs of the nodes `names` on batch `x` (eagerly, for checking)."""
  params = {n: {k: tf.constant(v) for k, v in p.items()}
            for n, p in _param_tensors(graph).items()}
  _, kept = run_nodes(graph, tf.constant(np.asarray(x, np.float32)), params,
                      keep=tuple(names))
  return {k: v.numpy() for k, v in kept.items()}
