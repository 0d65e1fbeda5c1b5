"""Data-aware one-shot pruning of any graph: Wanda and OBS, node after node.

Wanda (`reconstruction.wanda_mask`) and OBS (described in `reconstruction`)
on any graph: the chosen nodes are pruned in topological order, each one's
inputs computed on the calibration examples through the graph pruned so far
and, for OBS, its target the dense graph's pre-activation of that node. The
forward passes run in chunks of examples: in float64 for Wanda; for OBS in
float32 behind a convolution and float64 on a chain of dense nodes, their
products always in float64 (`_moments`). A node's inputs become the rows A of a matrix product with its
kernel:

  dense             the input vectors (leading axes flattened); kernel (in, out).
  conv2d            the input patches (im2col: `tf.image.extract_patches` with
                    the conv's strides, padding and dilation), ordered
                    (h, w, in) like the kernel reshaped to (h·w·in, out).
  depthwise_conv2d  channel c's h·w patch values; kernel[:, :, c, :] reshaped
                    to (h·w, multiplier): one small problem per channel.

Only moments are kept from chunk to chunk (Wanda's per-input sums of squares,
OBS's AᵀA and AᵀY), so no layer's patches of the whole calibration set are
ever held at once. Each chosen kernel loses exactly floor(k·n/100) of its n
weights: Wanda ranks |w|·‖x‖ over the whole kernel; OBS re-fits (bias
included, where the node has one) and prunes by exact greedy OBS or, on large
layers, SparseGPT's pass (`obs.prune_refit`); on a depthwise
kernel it ranks the OBS saliencies of all channels after their re-fits to
share the count among them, then prunes each channel.
"""

import functools
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfprune.criteria import calibration_arrays
from tfprune.criteria import obs
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

# float64 input values (rows × columns of A) per chunk: 32 MB.
CHUNK_VALUES = 1 << 22
OPS = ('dense', 'conv2d', 'depthwise_conv2d')


def prune_wanda(graph: Graph, k: float | Mapping[str, float],
                names: Sequence[str], calibration) -> Graph:
  """`graph` with Wanda masks on the kernels of `names`, chosen node after node.

  Args:
    graph: the dense graph (not modified).
    k: level in percent of each node's kernel, or {node name: level}.
    names: the nodes to prune (dense, conv2d, depthwise_conv2d).
    calibration: (n, ...) training examples, n·prod(input shape) values;
      for a graph with several inputs, a dict of such arrays by input name
      (or a list in input order), the same examples in each
      (`calibration_arrays`).

  Returns:
    The pruned graph; kept weights and biases are unchanged.
  """
  return _prune(graph, k, names, calibration, _wanda_node)


def prune_obs(graph: Graph, k: float | Mapping[str, float],
              names: Sequence[str], calibration,
              damping: float = reconstruction.DEFAULT_DAMPING,
              block_size: int = reconstruction.DEFAULT_BLOCK_SIZE) -> Graph:
  """`graph` with the kernels (and biases) of `names` pruned and re-fitted by OBS.

  Args as `prune_wanda`, and `damping`, `block_size` as described in
  `reconstruction`.

  Returns:
    The pruned graph: pruned weights are exactly 0.0.
  """
  reconstruction.check_obs_args(damping, block_size)
  return _prune(graph, k, names, calibration, functools.partial(
      _obs_node, damping=float(damping), block_size=int(block_size)))


def _prune(graph: Graph, k, names: Sequence[str], calibration,
           prune_node: Callable) -> Graph:
  order = [n.name for n in graph.nodes if n.name in set(names)]
  for name in names:
    node = graph.node(name)
    if node.op not in OPS:
      raise TfpruneError(f'node {name} ({node.op}) has no kernel to prune: '
                         f'choose nodes of {", ".join(OPS)}')
    pruning.check_level(pruning.layer_level(k, name))
  # float64 a chunk at a time (`_inputs`): a large calibration set stays small.
  x = calibration_arrays.check(graph, calibration)
  pruned = graph
  for name in order:
    params = prune_node(graph, pruned, name,
                        float(pruning.layer_level(k, name)), x)
    pruned = pruned.with_params({name: params})
  return pruned


def _wanda_node(dense: Graph, pruned: Graph, name: str, k: float,
                x: np.ndarray) -> dict[str, np.ndarray]:
  node = dense.node(name)
  sums = 0.0
  for a in _rows(node, _inputs(pruned, name, x)):
    a = a.numpy()
    sums = sums + np.einsum('n...,n...->...', a, a)
  kernel = node.params['kernel']
  flat = kernel.reshape(-1, kernel.shape[-1])  # (h·w·in, out) or (h·w·c, m)
  keep = reconstruction.wanda_mask(flat, k, np.sqrt(np.ravel(sums)))
  return {'kernel': np.where(keep.reshape(kernel.shape), kernel, np.float32(0))}


def _obs_node(dense: Graph, pruned: Graph, name: str, k: float, x: np.ndarray,
              damping: float, block_size: int) -> dict[str, np.ndarray]:
  node = dense.node(name)
  kernel = np.asarray(node.params['kernel'], np.float64)
  bias = node.params.get('bias')
  count = pruning.prune_count(k, kernel.size)
  depthwise = node.op == 'depthwise_conv2d'
  if depthwise:  # per channel c: (h·w [+1], multiplier)
    kh, kw, c, m = kernel.shape
    w0 = kernel.reshape(kh * kw, c, m).transpose(1, 0, 2)
    if bias is not None:
      w0 = np.concatenate([w0, np.reshape(bias, (c, 1, m))], axis=1)
  else:
    w0 = kernel.reshape(-1, kernel.shape[-1])
    if bias is not None:
      w0 = np.vstack([w0, np.asarray(bias, np.float64)[None]])
  ata, aty = _moments(node, pruned, dense, x, bias is not None, w0)
  rows = w0.shape[-2] - (bias is not None)
  if not depthwise:
    w = obs.obs_from_moments(ata, aty, w0, rows, count, damping, block_size)
    return _params(w, rows, kernel.shape, bias)
  fits = [obs.refit(ata[i], aty[i], w0[i], damping) for i in range(c)]
  # Rank every channel's saliencies in the kernel's (h, w, c, m) order, so the
  # floor(k·n/100) lowest of the whole kernel are shared among the channels.
  saliency = np.stack([obs.saliency(w, u, rows) for w, u in fits], axis=1)
  lowest = np.argsort(saliency.ravel(), kind='stable')[:count]
  counts = np.bincount(lowest // m % c, minlength=c)
  ws = np.stack([obs.prune_refit(w, u, rows, int(n), block_size)
                 for (w, u), n in zip(fits, counts)], axis=1)  # (rows [+1], c, m)
  return _params(ws.reshape(ws.shape[0], c * m), rows, kernel.shape, bias)


def _moments(node: Node, pruned: Graph, dense: Graph, x: np.ndarray,
             bias: bool, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """AᵀA and AᵀY of node `node` (per channel for a depthwise conv), float64.

  A: the node's input rows through `pruned` (with a column of ones if
  `bias`); Y: the dense node's pre-activation on its input through `dense`.
  AᵀY is taken as AᵀA·W₀ + AᵀR, R = Y − A·W₀ the node's kernel applied (by
  its own op) to the difference of its dense and pruned inputs: R is small
  and exactly 0 where the inputs agree. Behind a convolution the forward
  passes are float32; on a chain of dense nodes (rows are examples: cheap,
  and often fewer than the inputs, so the fit is sensitive) float64. The
  products are always float64 (numpy, AᵀA as a symmetric rank-k update):
  float32 products move the greedy choices enough to change a CNN's
  accuracy by tenths of a point. The ones column enters as sums.
  """
  dtype = tf.float64 if _dense_chain(dense, node.name) else tf.float32
  linear = node.replace(attrs={**node.attrs, 'activation': ops.LINEAR})
  kernel = {'kernel': tf.constant(node.params['kernel'], dtype)}
  chunks = _inputs(pruned, node.name, x, dtype)
  same = _upstream_unchanged(dense, pruned, node.name)
  others = iter(lambda: None, 0) if same else _inputs(dense, node.name, x,
                                                        dtype)
  depthwise = node.op == 'depthwise_conv2d'
  gram = cross = None
  sums = r_sums = 0.0
  count = 0
  for inputs, dense_inputs in zip(chunks, others):
    (a,) = _rows(node, iter([inputs]))
    if depthwise:  # (n, h·w, c) -> (c, n, h·w)
      a = tf.transpose(a, [2, 0, 1])
    a = a.numpy().astype(np.float64)
    gram = _accumulate(gram, np.swapaxes(a, -1, -2) @ a)
    sums = sums + np.sum(a, axis=-2)  # Aᵀ1
    count += a.shape[-2]
    if dense_inputs is None:
      continue
    r = ops.get(node.op).compute(linear, kernel, [dense_inputs - inputs],
                                 dense.shapes[node.name])
    r = tf.reshape(r, (a.shape[-2], -1))
    if depthwise:  # (n, c·m) -> (c, n, m)
      r = tf.transpose(tf.reshape(r, (r.shape[0], a.shape[0], -1)), [1, 0, 2])
    r = r.numpy().astype(np.float64)
    cross = _accumulate(cross, np.swapaxes(a, -1, -2) @ r)
    r_sums = r_sums + np.sum(r, axis=-2)
  ata = gram
  if bias:
    sums = sums[..., None]
    ata = np.block([[gram, sums], [np.swapaxes(sums, -1, -2),
                                   np.full(sums.shape[:-2] + (1, 1),
                                           float(count))]])
  aty = ata @ w0
  if cross is not None:
    aty += np.concatenate([cross, r_sums[..., None, :]], axis=-2) if bias else cross
  return ata, aty


def _accumulate(total: np.ndarray | None, value: np.ndarray) -> np.ndarray:
  """`total` + `value`, in place after the first chunk."""
  if total is None:
    return value
  total += value
  return total


def _dense_chain(graph: Graph, name: str) -> bool:
  """Whether every node with a kernel up to node `name` is a dense one."""
  for node in graph.nodes:
    if 'kernel' in node.params and node.op != 'dense':
      return False
    if node.name == name:
      return True
  return True


def _upstream_unchanged(dense: Graph, pruned: Graph, name: str) -> bool:
  """Whether every node before `name` is still the dense graph's own (so
  node `name` reads the same inputs in both)."""
  for d, p in zip(dense.nodes, pruned.nodes):
    if d.name == name:
      return True
    if d is not p:
      return False
  return True


def _params(w: np.ndarray, rows: int, shape: tuple[int, ...],
            bias: np.ndarray | None) -> dict[str, np.ndarray]:
  """Kernel (and bias row) of a re-fitted (rows [+1], out) matrix, float32."""
  params = {'kernel': w[:rows].reshape(shape).astype(np.float32)}
  if bias is not None:
    params['bias'] = w[rows].astype(np.float32)
  return params


def _inputs(graph: Graph, name: str, x: list[np.ndarray],
            dtype: tf.DType = tf.float64) -> Iterator[tf.Tensor]:
  """Node `name`'s input through `graph` on `x` (one array per graph input),
  in `dtype`, a chunk at a time."""
  node = graph.node(name)
  upto = calibration_arrays.upto(graph, node.inputs[0])
  params = {n.name: {p: tf.constant(v, dtype) for p, v in n.params.items()}
            for n in upto.nodes if n.params}
  shape, out = graph.shapes[node.inputs[0]], graph.shapes[name]
  rows = int(np.prod(out[:-1])) if node.op != 'dense' else int(np.prod(shape[:-1]))
  columns = int(np.prod(node.params['kernel'].shape[:-1]))
  chunk = max(1, CHUNK_VALUES // (rows * (columns + 1)))
  for batch in calibration_arrays.chunks(x, chunk):
    (value,), _ = evaluator.run_nodes(
        upto, [tf.constant(b, dtype) for b in batch], params)
    yield value


def _rows(node: Node, inputs: Iterator[tf.Tensor]) -> Iterator[tf.Tensor]:
  """The rows A of each chunk (see the module docstring)."""
  for x in inputs:
    if node.op == 'dense':
      yield tf.reshape(x, (-1, x.shape[-1]))
      continue
    kh, kw = node.params['kernel'].shape[:2]
    attrs = node.attrs
    patches = tf.image.extract_patches(
        x, [1, kh, kw, 1], [1, *attrs['strides'], 1],
        [1, *attrs['dilation'], 1], attrs['padding'].upper())
    if node.op == 'depthwise_conv2d':
      yield tf.reshape(patches, (-1, kh * kw, x.shape[-1]))
    else:
      yield tf.reshape(patches, (-1, patches.shape[-1]))
