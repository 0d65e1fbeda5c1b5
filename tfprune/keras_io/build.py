"""`Graph` -> Keras model: the one builder, for Keras 3 or tf_keras.

`to_keras(graph)` builds a plain functional model of the framework's own
layers (no tfprune class in it), so the model saves as `.keras` and loads
where tfprune is not installed. Each node becomes the layers its op
definition writes (`graph.ops`, `OpDef.to_keras`): the layer it was imported
from, named like it; a depthwise + 1x1 pair imported from a SeparableConv2D
becomes a DepthwiseConv2D and a Conv2D (same outputs); the projections and
`attention` node of a MultiHeadAttention become that one layer
(`ops.attention.keras_fusions`). A graph made smaller
by compaction builds the same way: layer sizes come from its arrays. A
graph with several inputs or outputs gives a model with the same inputs
(named like the input nodes) and outputs, in the graph's order.
"""

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

FRAMEWORKS = keras_compat.FRAMEWORKS


def to_keras(graph: Graph, framework: str | None = None):
  """A plain Keras model computing `graph`.

  Args:
    graph: any graph (imported, pruned or compacted).
    framework: 'keras3' or 'tf_keras'; default: the framework the graph was
      imported from, else tf_keras (the one TF-MOT wraps).

  Returns:
    An uncompiled functional model with the graph's weights, whose layers
    carry the graph's node names.
  """
  framework = framework or graph.metadata.get('framework', 'tf_keras')
  if framework not in FRAMEWORKS:
    raise TfpruneError(f'unknown framework {framework!r}: choose from '
                       f'{", ".join(FRAMEWORKS)}')
  K = keras_compat.keras_module(framework)
  tensors = {}
  for node, shape in zip(graph.inputs, graph.input_shapes):
    tensors[node.name] = K.Input(shape, name=node.name)
  pending = []
  # A MultiHeadAttention (five nodes) is written as one layer, at its output.
  fusions = ops.attention.keras_fusions(graph)
  absorbed = {name for f in fusions.values() for name in f.absorbed}
  for node in graph.nodes[len(graph.inputs):]:
    if node.name in absorbed:
      continue
    if node.name in fusions:
      fusion = fusions[node.name]
      tensors[node.name] = fusion.layer(K, [tensors[s] for s in fusion.inputs()])
      continue
    inputs = [tensors[s] for s in node.inputs]
    x = inputs[0] if ops.get(node.op).arity == 1 else inputs
    shapes = [graph.shapes[s] for s in node.inputs]
    for layer, weights in ops.get(node.op).to_keras(K, node, shapes):
      x = layer(x)
      if weights:
        pending.append((layer, weights))
    tensors[node.name] = x
  name = str(graph.metadata.get('model_name', 'tfprune_model'))
  inputs = [tensors[n.name] for n in graph.inputs]
  outputs = [tensors[o] for o in graph.outputs]
  model = K.Model(inputs if len(inputs) > 1 else inputs[0],
                  outputs if len(outputs) > 1 else outputs[0], name=name)
  for layer, weights in pending:
    layer.set_weights([np.asarray(w) for w in weights])
  return model


def layer_of(model, node_name: str):
  """The layer of `to_keras`'s `model` holding node `node_name`'s arrays.

  A node whose activation has no `activation=` argument is built as a layer
  named `<node>_preact` followed by the activation layer named `<node>`; a
  pruning wrapper (TF-MOT) is looked through.
  """
  layers = {getattr(l, 'layer', l).name: getattr(l, 'layer', l)
            for l in model.layers}
  layer = layers.get(f'{node_name}_preact') or layers.get(node_name)
  if layer is None:
    raise TfpruneError(f'model {model.name} has no layer {node_name}: build it '
                       'with tfprune.to_keras')
  return layer


def variables(model, node: Node) -> dict:
  """Param name -> the Keras variable holding it, for `node` of `model`'s graph.

  Raises:
    TfpruneError: the node's prunable kernels are not Keras variables (a
      `Bidirectional` holds both directions in one array), so training
      cannot reach them.
  """
  definition = ops.get(node.op)
  names = [p for p in definition.variables if p in node.params]
  if not names and definition.kernels:
    raise TfpruneError(f'layer {node.name} ({node.op}) holds its weights in '
                       'other arrays than its Keras variables: prune it '
                       'one-shot (tfprune.prune), not while training')
  if not names:
    return {}
  return dict(zip(names, layer_of(model, node.name).weights, strict=True))
