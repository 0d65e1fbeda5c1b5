"""The op definitions: ONE definition per layer type, registered under its name.

Each module defines one family of ops (`dense`, `conv`, `conv_transpose`,
`grouped_conv`, `normalization`, `affine`, `activation_layers` (whose values
are `activations`'s), `attention`, `merge`, `operators`, `pooling`,
`recurrent`, `resampling`, `sequence`, `shaping`); each op is one
`base.OpDef` registered once in `OPS`, holding everything tfprune knows
about it: parameters and shape rule, forward computation, Keras reading
and writing (tf_keras and Keras 3), channel flow for the dependency groups
(`graph.groups`) and how a removed channel's constant passes through it
(`transforms.channel_constants`). Adding a layer type is one new definition
(see docs/layers.md).

In the spirit of TF-MOT's `prune_registry` and Torch-Pruning's table of
pruning functions, but one table for every concern.
"""

from tfprune.graph.ops import activation_layers
from tfprune.graph.ops import activations
from tfprune.graph.ops import affine
from tfprune.graph.ops import attention
from tfprune.graph.ops import base
from tfprune.graph.ops import conv
from tfprune.graph.ops import conv_transpose
from tfprune.graph.ops import dense
from tfprune.graph.ops import grouped_conv
from tfprune.graph.ops import merge
from tfprune.graph.ops import normalization
from tfprune.graph.ops import operators
from tfprune.graph.ops import pooling
from tfprune.graph.ops import recurrent
from tfprune.graph.ops import resampling
from tfprune.graph.ops import sequence
from tfprune.graph.ops import shaping

OPS = base.OPS
OpDef = base.OpDef
Shape = base.Shape
get = base.get
ACTIVATIONS = activations.ACTIVATIONS
activation = activations.activation
LINEAR = activations.LINEAR


def keras_readers() -> dict:
  """Keras class (or operation) name -> its reader, from every definition."""
  readers = {}
  for definition in OPS.values():
    for cls, read in definition.keras.items():
      if cls in readers:
        raise ValueError(f'Keras class {cls} is read by two ops')
      readers[cls] = read
  return readers


__all__ = ['OPS', 'OpDef', 'Shape', 'get', 'ACTIVATIONS', 'activation',
           'LINEAR', 'keras_readers', 'activation_layers', 'activations',
           'affine', 'attention', 'base', 'conv', 'conv_transpose', 'dense',
           'grouped_conv', 'merge', 'normalization', 'operators', 'pooling',
           'recurrent', 'resampling', 'sequence', 'shaping']
