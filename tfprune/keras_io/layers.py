"""The Keras layers the importer reads: the readers of every op definition.

`LAYERS` maps a Keras layer class name (the same in tf_keras and Keras 3) to
the reader its op definition (`graph.ops`) registers: it reads the layer's
config and weights (a `LayerCall`) and returns its graph nodes: one node,
named like the layer (or by its path, for a layer of a nested model whose
name is not unique), or two for a SeparableConv2D (its depthwise and its
pointwise convolution). A setting the evaluator does not compute (a
channels-first conv, a custom activation, ...) is refused with one
`TfpruneError` line naming the layer and its type.
"""

from tfprune.errors import TfpruneError
from tfprune.graph import ops

LayerCall = ops.base.LayerCall
TensorArg = ops.base.TensorArg
refusal = ops.base.refusal
LAYERS = ops.keras_readers()
# The layer classes, then the operators and tf_keras operations, by name.
SUPPORTED = ', '.join(sorted(LAYERS, key=lambda k: ('.' in k, k)))


def framework_of(model) -> str:
  """'keras3' or 'tf_keras', from the Keras classes the model derives from."""
  for cls in type(model).__mro__:
    module = cls.__module__
    if module.startswith('tf_keras'):
      return 'tf_keras'
    if module.startswith('keras.'):
      return 'keras3'
  raise TfpruneError(f'{type(model).__name__} from {type(model).__module__} is '
                     'not a Keras model: pass a tf_keras or Keras 3 model')
