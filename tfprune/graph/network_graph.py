"""A weight folder's `Network` as a `Graph`, so stored networks join every graph tool.

Layer i (1-based, as in the file names) becomes the nodes `flatten_i` or
`global_pool_i` (if its spec asks), `layer_i` (dense or conv, linear),
`norm_i`, `add_i`, `relu_i` and `pool_i`, computing what `evaluate` computes
for the network: read the source -> flatten / pool -> kernel + bias -> batch
norm -> residual add -> ReLU (never on the last layer) -> max-pool. A dense
chain's input is the flat vector of `input_dim` values.
"""

from tfprune.graph import layers as layers_lib
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.graph.network import Network

INPUT = 'input'


def to_graph(network: Network, use_biases: bool = True) -> Graph:
  """The graph computing `network` (biases left out if not `use_biases`)."""
  if network.specs is None:
    specs = [layers_lib.LayerSpec('dense')] * network.num_layers
    input_shape = (network.input_dim,)
    norms = (None,) * network.num_layers
  else:
    specs, input_shape, norms = network.specs, network.input_shape, network.norms
  nodes = [Node(INPUT, 'input')]
  outputs = [INPUT]  # outputs[j]: the node holding 1-based layer j's output
  last = network.num_layers - 1
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
    params = {'kernel': network.kernels[i]}
    if use_biases:
      params['bias'] = network.biases[i]
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
  return Graph(tuple(nodes), outputs[-1], input_shape,
               {'framework': 'tf_keras', 'model_name': 'tfprune_network'})
