"""A weight folder's `Network` as a `Graph`, so stored networks join every graph tool.

Layer i (1-based, as in the file names) becomes the nodes `flatten_i` or
`global_pool_i` (if its spec asks), `layer_i` (dense or conv, linear),
`norm_i`, `add_i`, `relu_i` and `pool_i`, computing what `evaluate` computes
for the network: read the source -> flatten / pool -> kernel + bias -> batch
norm -> residual add -> ReLU (never on the last layer) -> max-pool. A dense
chain's input is the flat vector of `input_dim` values.
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.graph.network import Network

INPUT = 'input'


def to_graph(network: Network, use_biases: bool = True) -> Graph:
  """The graph computing `network` (biases left out if not `use_biases`)."""
  return layers_graph(
      network.kernels,
      network.biases if use_biases else (None,) * network.num_layers,
      network.specs, network.norms, network.input_shape)


def layers_graph(kernels: Sequence[np.ndarray],
                 biases: Sequence[np.ndarray | None],
                 specs: Sequence[layers_lib.LayerSpec] | None = None,
                 norms: Sequence[np.ndarray | None] | None = None,
                 input_shape: Sequence[int] | None = None) -> Graph:
  """The graph of layers stored as arrays (a weight folder, an old export).

  Args:
    kernels: per layer, the (in, out) dense or (h, w, in, out) conv kernel.
    biases: per layer, the (out,) bias, or None for a layer without one.
    specs: one `layers.LayerSpec` per layer, or None for a dense ReLU chain
      reading a flat vector of `kernels[0].shape[0]` values.
    norms: per layer, None or the (4, out) batch-norm parameters (gamma,
      beta, moving mean, moving variance); only with `specs`.
    input_shape: shape of one example; required with `specs`.
  """
  if specs is None:
    specs = [layers_lib.LayerSpec('dense')] * len(kernels)
    input_shape = (kernels[0].shape[0],)
    norms = (None,) * len(kernels)
  norms = norms or (None,) * len(kernels)
  nodes = [Node(INPUT, 'input')]
  outputs = [INPUT]  # outputs[j]: the node holding 1-based layer j's output
  last = len(kernels) - 1
  for i, (spec, source) in enumerate(zip(specs, layers_lib.sources(specs))):
    n = i + 1
    head = outputs[source]

    def add(name, op, attrs=None, params=None, inputs=None):
      nonlocal head
      nodes.append(Node(f'{name}_{n}', op, inputs or [head], attrs or {},
                        params or {}))
      head = nodes[-1].name
    if spec.flatten:
      add('flatten', 'flatten')
    if spec.global_pool:
      add('global_pool', 'global_avg_pool2d', {'keepdims': False})
    params = {'kernel': kernels[i]}
    if biases[i] is not None:
      params['bias'] = biases[i]
    if spec.kind == 'conv':
      add('layer', 'conv2d', {'strides': (spec.strides,) * 2,
                              'padding': spec.padding, 'dilation': (1, 1),
                              'activation': ops.LINEAR}, params)
    else:
      add('layer', 'dense', {'activation': ops.LINEAR}, params)
    if spec.norm_epsilon is not None:
      gamma, beta, mean, variance = norms[i]
      add('norm', 'batch_norm', {'epsilon': spec.norm_epsilon},
          {'gamma': gamma, 'beta': beta, 'mean': mean, 'variance': variance})
    if spec.residual is not None:
      add('add', 'merge', {'mode': 'add'}, inputs=[head, outputs[spec.residual]])
    if i < last and spec.relu:
      add('relu', 'activation', {'activation': ops.activation('relu')})
    if spec.pool > 1:
      add('pool', 'max_pool2d', {'pool_size': (spec.pool,) * 2,
                                 'strides': (spec.pool,) * 2, 'padding': 'valid'})
    outputs.append(head)
  return Graph(tuple(nodes), outputs[-1], tuple(input_shape),
               {'framework': 'tf_keras', 'model_name': 'tfprune_network'})


# How far a layer's chain has got; each step must come later (the order a
# `Network` layer computes in).
_KERNEL, _NORM, _ADD, _RELU, _POOL = range(5)
_ORDER = 'conv/dense, batch norm, add, ReLU, max-pool'


@dataclasses.dataclass
class _Layer:
  """One `Network` layer being read off the graph."""
  weight: str
  spec: layers_lib.LayerSpec
  norm: str | None = None
  stage: int = _KERNEL
  relu: bool = False
  head: str = ''


def _refuse(node: Node, why: str) -> TfpruneError:
  return TfpruneError(f'layer {node.name} ({node.op}) has no place in a '
                      f'Network: {why}')


def from_graph(graph: Graph) -> tuple[Network, list[tuple[str, str | None]]]:
  """The `Network` computing `graph`'s logits, and each layer's node names.

  The inverse of `to_graph` for the graphs a `Network` can express: chains of
  dense and conv layers, each continued in the order conv/dense, batch norm,
  residual add, ReLU, max-pool, with a flatten or global average pool before
  a dense layer (ResNet-18, LeNet-5, the MLP). A final softmax is dropped
  (a Network computes logits). Dropout-like identities are skipped.

  Returns:
    The network, and per layer (weight node, batch-norm node or None).

  Raises:
    TfpruneError: naming the first node a Network cannot express.
  """
  found: list[_Layer] = []
  value: dict[str, tuple[int, str | None]] = {graph.input.name: (0, None)}
  referenced: list[tuple[int, str, Node]] = []  # (layer, node read, reader)
  consumers = {n.name: 0 for n in graph.nodes}
  for node in graph.nodes:
    for source in node.inputs:
      consumers[source] += 1
  last_weight = graph.weighted()[-1].name if graph.weighted() else None

  def extend(node: Node, stage: int, source: str | None = None) -> _Layer:
    source = source or node.inputs[0]
    layer, pending = value[source]
    entry = found[layer - 1] if layer else None
    if (entry is None or pending or consumers[source] != 1
        or entry.head != source or entry.stage >= stage):
      raise _refuse(node, f'it does not continue one layer in the order '
                    f'{_ORDER}, on a tensor nothing else reads')
    entry.stage, entry.head = stage, node.name
    value[node.name] = (layer, None)
    return entry

  for node in graph.nodes[1:]:
    op, attrs = node.op, node.attrs
    if op in ('dense', 'conv2d'):
      layer, pending = value[node.inputs[0]]
      referenced.append((layer, node.inputs[0] if not pending else
                         graph.node(node.inputs[0]).inputs[0], node))
      fn = attrs['activation']['fn']
      last = node.name == last_weight
      if fn not in (('linear', 'softmax') if last else ('linear',)) and not (
          fn == 'relu' and dict(attrs['activation']) == ops.activation('relu')
          and not last):
        raise _refuse(node, f'activation {fn}: a Network computes ReLU between '
                      'layers and logits at the end')
      if op == 'conv2d':
        stride = attrs['strides'][0]
        if (pending or tuple(attrs['strides']) != (stride, stride)
            or tuple(attrs['dilation']) != (1, 1) or attrs.get('separable')):
          raise _refuse(node, 'a Network has plain Conv2D layers with equal '
                        'strides, on an (h, w, c) input')
        spec = layers_lib.LayerSpec('conv', stride, attrs['padding'])
      else:
        spec = layers_lib.LayerSpec('dense', flatten=pending == 'flatten',
                                    global_pool=pending == 'global_pool')
      index = len(found) + 1
      spec = dataclasses.replace(spec, source=None if layer == index - 1 else layer)
      relu = fn == 'relu'
      found.append(_Layer(node.name, spec, stage=_RELU if relu else _KERNEL,
                          relu=relu, head=node.name))
      value[node.name] = (index, None)
    elif op == 'batch_norm':
      entry = extend(node, _NORM)
      entry.norm = node.name
      entry.spec = dataclasses.replace(entry.spec, norm_epsilon=attrs['epsilon'])
    elif op == 'activation' and dict(attrs['activation']) == ops.activation('relu'):
      extend(node, _RELU).relu = True
    elif op == 'max_pool2d':
      size = attrs['pool_size'][0]
      if (tuple(attrs['pool_size']) != (size, size) or attrs['padding'] != 'valid'
          or tuple(attrs['strides']) != (size, size)):
        raise _refuse(node, 'a Network max-pools square, valid windows with '
                      'stride = size')
      entry = extend(node, _POOL)
      entry.spec = dataclasses.replace(entry.spec, pool=size)
    elif op == 'merge' and attrs['mode'] == 'add' and len(node.inputs) == 2:
      layers = [value[s][0] for s in node.inputs]
      # The later layer continues; the other input is its residual.
      main = max(range(2), key=lambda j: layers[j])
      other = node.inputs[1 - main]
      if value[other][1] is not None:
        raise _refuse(node, 'its residual must be a layer\'s output')
      entry = extend(node, _ADD, node.inputs[main])
      referenced.append((layers[1 - main], other, node))
      entry.spec = dataclasses.replace(entry.spec, residual=layers[1 - main])
    elif op in ('flatten', 'global_avg_pool2d'):
      layer, pending = value[node.inputs[0]]
      if pending or (op == 'global_avg_pool2d' and attrs['keepdims']):
        raise _refuse(node, 'a Network flattens or pools once, before a dense '
                      'layer')
      value[node.name] = (layer, 'flatten' if op == 'flatten' else 'global_pool')
    elif op == 'identity' or (op == 'activation' and node.name == graph.output
                              and attrs['activation']['fn'] == 'softmax'):
      value[node.name] = value[node.inputs[0]]
      if found and found[value[node.name][0] - 1].head == node.inputs[0]:
        found[value[node.name][0] - 1].head = node.name
    else:
      raise _refuse(node, 'a Network has dense and conv layers with batch norm, '
                    'residual adds, ReLU, max-pooling, flatten and global '
                    'average pooling only')
  for layer, name, reader in referenced:
    if layer and found[layer - 1].head != name:
      raise _refuse(reader, f'it reads {name}, which is not the final output of '
                    'a layer')
  if not found or value[graph.output][0] != len(found) or (
      found[-1].head != graph.output):
    raise TfpruneError(f'the graph\'s output {graph.output} is not the output of '
                       'its last dense/conv layer: a Network cannot express it')
  if found[-1].relu:
    raise _refuse(graph.node(found[-1].weight), 'the output layer ends in a ReLU')
  specs = [dataclasses.replace(e.spec, relu=e.relu) if i < len(found) - 1
           else e.spec for i, e in enumerate(found)]
  kernels, biases, norms = [], [], []
  for entry in found:
    node = graph.node(entry.weight)
    kernel = node.params['kernel']
    kernels.append(kernel)
    biases.append(node.params.get('bias', np.zeros(kernel.shape[-1], np.float32)))
    bn = graph.node(entry.norm).params if entry.norm else None
    norms.append(None if bn is None else np.stack(
        [bn[k] for k in ('gamma', 'beta', 'mean', 'variance')]))
  names = [(e.weight, e.norm) for e in found]
  plain = [layers_lib.LayerSpec('dense', flatten=i == 0 and s.flatten)
           for i, s in enumerate(specs)]
  if list(specs) == plain and (len(graph.input_shape) == 1 or specs[0].flatten):
    return Network(tuple(kernels), tuple(biases)), names  # a dense chain
  return Network(tuple(kernels), tuple(biases), tuple(specs), tuple(norms),
                 graph.input_shape), names
