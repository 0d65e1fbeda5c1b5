"""The op definition: everything tfprune knows about one layer type, in one place.

An `OpDef` holds, for one op of the graph (`Node.op`):

* its parameters and shape rule (`params`, `required`, `kernels`, `arity`,
  `shape`): what a node of the op holds and the output shape its inputs give;
* its forward computation (`compute`), with the TensorFlow kernels Keras uses,
  so an imported graph reproduces its model to float32 round-off;
* how it is read from Keras (`keras`: Keras class or operation -> reader of a
  `LayerCall`, the same in tf_keras and Keras 3) and written back
  (`to_keras(K, node, input shapes)`: the layers computing it, `variables`: the params
  that are Keras variables, in the layer's weight order);
* how channels flow through it for the dependency groups (`channels`, a rule
  called by `graph.groups` with a `ChannelCall`; None: unknown, so the
  channels the op touches are kept, named in one line);
* how a removed channel's constant passes through it (`constants`: which
  output entries stay constant when their inputs are, a `ConstantCall`
  rule; `exact`: the float64 value for ops that keep it exactly);
* for an op that mixes its channels but can leave some out (a
  LayerNormalization over them), the param holding its channel mask
  (`channel_mask`: 1 kept, 0 removed; absent until a channel is removed).
  Masking zeroes a removed channel's entry of it and of the op's other
  per-channel params, and compaction deletes them, so the mask goes.

`register` adds a definition to `OPS` under its name, once; `get(name)`
reads it. Shapes are per example (no batch axis), channels last.
"""

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from tfprune import registry
from tfprune.errors import TfpruneError

Shape = tuple[int, ...]
# Roles of a slice of a dependency group: a producer's output channels, a
# per-channel array that follows them, a consumer's input rows.
PRODUCER, CHANNEL, CONSUMER = 'producer', 'channel', 'consumer'


@dataclasses.dataclass
class LayerCall:
  """What a reader sees of one Keras layer (or operation) call.

  Attributes:
    layer: the Keras layer or operation.
    config: its config (empty for an operation that has none).
    weights: its variables by short name.
    inputs: graph names of the tensors it reads, in call order.
    input_shapes: their per-example shapes.
    framework: 'tf_keras' or 'keras3'.
    node_name: the node's name (the layer's, or its path in a nested model).
    args: the call's positional arguments, each tensor replaced by its index
      in `inputs` (`TensorArg`); constants as given.
    kwargs: the call's keyword arguments, likewise.
  """
  layer: Any
  config: dict
  weights: dict[str, np.ndarray]
  inputs: list[str]
  input_shapes: list[tuple]
  framework: str
  node_name: str = ''
  args: tuple = ()
  kwargs: dict = dataclasses.field(default_factory=dict)

  @property
  def name(self) -> str:
    return self.node_name or self.layer.name

  def refuse(self, why: str) -> TfpruneError:
    return refusal(self.layer, why, self.name)


@dataclasses.dataclass(frozen=True)
class TensorArg:
  """A tensor argument of a call: its position in `LayerCall.inputs`."""
  index: int


def refusal(layer, why: str, name: str | None = None) -> TfpruneError:
  """The one-line refusal of a Keras layer (called `name` in the graph)."""
  return TfpruneError(f'layer {name or getattr(layer, "name", layer)} '
                      f'({type(layer).__name__}) cannot be imported: {why}')


@dataclasses.dataclass
class ChannelCall:
  """What a channel rule sees of one node (see `graph.groups`).

  Attributes:
    node: the node.
    ins: channel labels of each input's last axis (-1: no group).
    shapes_in: the inputs' per-example shapes.
    shape_out: the node's output shape.
    padded_in: an input reached zero padding since its producer.
    padded_out: set by the rule when its output has (default: padded_in).
  """
  node: Any
  ins: list[np.ndarray]
  shapes_in: list[Shape]
  shape_out: Shape
  padded_in: bool
  padded_out: bool | None = None

  @property
  def x(self) -> np.ndarray:
    return self.ins[0]


@dataclasses.dataclass
class ConstantCall:
  """What a constant rule sees: which entries of each input are constant."""
  node: Any
  known: list[np.ndarray]
  shapes_in: list[Shape]
  shape_out: Shape


@dataclasses.dataclass(frozen=True)
class OpDef:
  """One op: see the module docstring for each part."""
  name: str
  shape: Callable[[dict, dict, Sequence[Shape]], Shape]
  compute: Callable  # (node, params, input tensors, output shape) -> tensor
  # (K, node, input shapes) -> [(layer or callable, weights or None)]
  to_keras: Callable | None
  params: tuple[str, ...] = ()
  required: tuple[str, ...] = ()
  kernels: dict[str, int] = dataclasses.field(default_factory=dict)
  input_axis: int | None = None  # a producer kernel's axis of input channels
  arity: int | None = 1  # None: two or more
  keras: dict[str, Callable[[LayerCall], list]] = dataclasses.field(
      default_factory=dict)
  variables: tuple[str, ...] = ()
  channels: Callable[[Any, ChannelCall], np.ndarray] | None = None
  constants: Callable[[ConstantCall], np.ndarray] | None = None
  exact: Callable[[Any, np.ndarray], np.ndarray | None] | None = None
  zero_pads: Callable[[Any], bool] = lambda node: False
  activation: bool = False  # the node carries an `activation` attribute
  channel_mask: str | None = None


OPS: dict[str, OpDef] = {}


def register(definition: OpDef) -> OpDef:
  """Adds `definition` to `OPS`; a name is registered once."""
  if definition.name in OPS:
    raise ValueError(f'op {definition.name} is defined twice')
  OPS[definition.name] = definition
  return definition


def get(op: str) -> OpDef:
  """The definition of `op`.

  Raises:
    TfpruneError: `op` is not in `OPS`.
  """
  return registry.lookup(OPS, op, 'op')


# Shape helpers shared by the families.

def spatial(size: int, window: int, stride: int, padding: str,
            dilation: int = 1) -> int:
  effective = (window - 1) * dilation + 1
  if padding == 'same':
    return math.ceil(size / stride)
  return (size - effective) // stride + 1


def image(shape: Shape, what: str, rank: int = 3) -> Shape:
  if len(shape) != rank:
    dims = {2: '(steps, c)', 3: '(h, w, c)'}[rank]
    raise TfpruneError(f'{what} needs an {dims} input, got {shape}')
  return shape


def same_shape(attrs, params, inputs):
  del attrs, params
  return inputs[0]


# Channel and constant rules shared by the families.

def pass_channels(walk, call: ChannelCall) -> np.ndarray:
  """Output channel c is input channel c."""
  del walk
  return call.x


def pass_constants(call: ConstantCall) -> np.ndarray:
  """Output entry c is constant when input entry c is."""
  return call.known[0]


def mixes_channels(why: str) -> Callable:
  """A channel rule for an op mixing the channel axis: they are kept."""
  def rule(walk, call: ChannelCall) -> np.ndarray:
    walk.block(call.x, f'{call.node.name} ({call.node.op}) {why}')
    return np.full(call.shape_out[-1] if call.shape_out else 1, -1)
  return rule


def produce_channels(walk, call: ChannelCall) -> np.ndarray:
  """A dense/conv producer: reads its input's channels, makes new ones."""
  node = call.node
  definition = get(node.op)
  kernel = node.params['kernel']
  if definition.zero_pads(node) or call.padded_in:
    walk.pads(call.x)
  walk.record(call.x, node.name, 'kernel', definition.input_axis, CONSUMER)
  axis = definition.kernels['kernel']
  out = walk.new(node.name, kernel.shape[axis])
  walk.record(out, node.name, 'kernel', axis, PRODUCER)
  if 'bias' in node.params:
    walk.record(out, node.name, 'bias', 0, PRODUCER)
  call.padded_out = False
  return out


# Reading Keras configs, shared by the families.

def pair(l: LayerCall, value, what: str, rank: int = 2) -> tuple[int, ...]:
  value = (value,) * rank if isinstance(value, int) else tuple(value)
  if len(value) != rank:
    raise l.refuse(f'{what} {value} is not {rank}-D')
  return tuple(int(v) for v in value)


def channels_last(l: LayerCall) -> None:
  if l.config.get('data_format', 'channels_last') not in (
      'channels_last', None):
    raise l.refuse('data_format channels_first is not supported: use '
                   'channels_last')


def bias_of(l: LayerCall) -> dict:
  return {'bias': l.weights['bias']} if l.config.get('use_bias', True) else {}


def check_plain(l: LayerCall) -> None:
  if l.config.get('lora_rank') or l.config.get('quantization_config'):
    raise l.refuse('LoRA and quantized layers are not supported')


def tensor_args(l: LayerCall) -> list:
  """The operands of an operator call: positional arguments, then keyword
  arguments other than `name` (tensors as `TensorArg`, constants as given)."""
  operands = [a for a in l.args]
  operands += [v for k, v in l.kwargs.items() if k != 'name']
  return operands


def call_option(l: LayerCall, name: str, position: int, default):
  """An operation's option: from its config (Keras 3), its keyword or its
  positional argument (tf_keras), else `default`."""
  if name in l.config:
    return l.config[name]
  if name in l.kwargs:
    return l.kwargs[name]
  if len(l.args) > position:
    return l.args[position]
  return default
