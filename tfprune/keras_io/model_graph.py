"""Functional Keras models with skip connections (ResNet-18) as layer specs.

`trace` walks the layers of a functional model in their (topological) order
and gives each Conv2D or Dense layer a `layers.LayerSpec`. A weight layer's
chain may continue, in this order only, with BatchNormalization, an Add with
an earlier layer's output (the residual), ReLU and MaxPooling2D; a Flatten or
GlobalAveragePooling2D before a Dense layer, and Dropout anywhere, are
allowed too. Whichever layer reads a tensor fixes it as some weight layer's
output: a chain is only continued through tensors read by nothing else, so
every `source` and `residual` is the final output of its layer. In an Add of
two open chains (a projection shortcut and the block's second conv), the
later weight layer continues and the earlier one ends without ReLU. Anything
else is refused with a one-line `TfpruneError` naming the Keras layer.
"""

import dataclasses

import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.keras_compat import keras

# How far a weight layer's chain has got; each step must come later.
_KERNEL, _NORM, _ADD, _RELU, _POOL = range(5)
_ORDER = 'conv/dense, batch norm, add, ReLU, max-pool'


@dataclasses.dataclass(frozen=True)
class Traced:
  """One weight layer of a traced model.

  Attributes:
    layer: the Conv2D or Dense layer.
    spec: how the `Network` computes it.
    norm_layer: its BatchNormalization layer, or None.
  """
  layer: keras.layers.Layer
  spec: layers_lib.LayerSpec
  norm_layer: keras.layers.BatchNormalization | None


@dataclasses.dataclass(frozen=True)
class _Value:
  """What a Keras tensor is in `Network` terms.

  Attributes:
    layer: 1-based weight layer whose output it is; 0: the network input.
    pending: 'flatten' or 'global_pool' waiting for a Dense layer, or None.
    shared: an earlier alias (before a Dropout) is read elsewhere too.
  """
  layer: int
  pending: str | None = None
  shared: bool = False


@dataclasses.dataclass
class _Open:
  layer: keras.layers.Layer
  spec: layers_lib.LayerSpec
  norm_layer: keras.layers.BatchNormalization | None = None
  stage: int = _KERNEL
  relu: bool = False


def trace(model: keras.Model) -> list[Traced]:
  """The weight layers of a functional `model`, in `model.layers` order.

  Raises:
    TfpruneError: the model has a layer or a connection a `Network` cannot
      express, naming the Keras layer.
  """
  if len(model.inputs) != 1 or len(model.outputs) != 1:
    raise TfpruneError(
        f'model {model.name} has {len(model.inputs)} inputs and '
        f'{len(model.outputs)} outputs: a Network has one of each')
  weight = [l for l in model.layers
            if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
  if not weight:
    raise TfpruneError(f'model {model.name} has no Conv2D or Dense layer')
  values: dict[str, _Value] = {}
  found: list[_Open] = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      values[layer.name] = _Value(0)
      continue
    inbound = _inbound(model, layer)
    values[layer.name] = _step(model, layer, inbound, values, found,
                               last=layer is weight[-1])
  output = model.outputs[0]._keras_history.layer.name  # pylint: disable=protected-access
  if values[output] != _Value(len(found)):
    raise TfpruneError(
        f'model {model.name}: its output ({output}) is not the output of its '
        f'last Conv2D/Dense layer {weight[-1].name}: a Network cannot express it')
  return [_finish(model, entry, last=i == len(found) - 1)
          for i, entry in enumerate(found)]


def _step(model, layer, inbound, values, found, last) -> _Value:
  """The value of `layer`'s output; updates the open weight layers."""
  value = values[inbound[0]]
  if len(inbound) != 1 and not isinstance(layer, keras.layers.Add):
    raise _refuse(model, layer, 'it has several inputs')
  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
    return _weight_layer(model, layer, value, found, last)
  if isinstance(layer, keras.layers.BatchNormalization):
    if layer.gamma is None or layer.beta is None or list(layer.axis) != [
        len(layer.input_shape) - 1]:
      raise _refuse(model, layer, 'a Network needs scale, center and the '
                    'channels axis last')
    out = _extend(model, layer, inbound[0], value, found, _NORM)
    entry = found[out.layer - 1]
    entry.norm_layer = layer
    entry.spec = dataclasses.replace(entry.spec, norm_epsilon=float(layer.epsilon))
    return out
  if _is_relu(layer):
    out = _extend(model, layer, inbound[0], value, found, _RELU)
    found[out.layer - 1].relu = True
    return out
  if isinstance(layer, keras.layers.MaxPooling2D):
    size = layer.pool_size[0]
    if (tuple(layer.pool_size) != (size, size) or tuple(layer.strides) != (size, size)
        or layer.padding != 'valid' or layer.data_format != 'channels_last'):
      raise _refuse(model, layer, 'a Network max-pools square, valid, '
                    'channels-last windows with stride = size')
    out = _extend(model, layer, inbound[0], value, found, _POOL)
    entry = found[out.layer - 1]
    entry.spec = dataclasses.replace(entry.spec, pool=size)
    return out
  if isinstance(layer, keras.layers.Add):
    return _add(model, layer, inbound, values, found)
  if isinstance(layer, (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)):
    if value.pending or (isinstance(layer, keras.layers.GlobalAveragePooling2D)
                         and (layer.keepdims or layer.data_format != 'channels_last')):
      raise _refuse(model, layer, 'a Network flattens or pools once, '
                    'channels last, before a Dense layer')
    kind = 'flatten' if isinstance(layer, keras.layers.Flatten) else 'global_pool'
    return _Value(value.layer, kind, True)
  if isinstance(layer, keras.layers.Dropout):
    return dataclasses.replace(
        value, shared=value.shared or _outbound(model, inbound[0]) > 1)
  raise _refuse(model, layer, 'use Conv2D, Dense, BatchNormalization, Add, '
                'ReLU, MaxPooling2D, GlobalAveragePooling2D, Flatten and '
                'Dropout only')


def _weight_layer(model, layer, value, found, last) -> _Value:
  i = len(found) + 1
  check_activation(model, layer, last)
  name = layer.activation.__name__
  if isinstance(layer, keras.layers.Conv2D):
    stride = layer.strides[0]
    if (value.pending or type(layer) is not keras.layers.Conv2D
        or tuple(layer.strides) != (stride, stride)
        or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1
        or layer.data_format != 'channels_last'):
      raise _refuse(model, layer, 'a Network has plain channels-last Conv2D '
                    'layers with equal strides, on an (h, w, c) input')
    spec = layers_lib.LayerSpec('conv', stride, layer.padding)
  else:
    spec = layers_lib.LayerSpec('dense', flatten=value.pending == 'flatten',
                                global_pool=value.pending == 'global_pool')
  spec = dataclasses.replace(
      spec, source=None if value.layer == i - 1 else value.layer)
  found.append(_Open(layer, spec, stage=_RELU if name == 'relu' else _KERNEL,
                     relu=name == 'relu'))
  return _Value(i)


def check_activation(model: keras.Model, layer: keras.layers.Layer,
                     last: bool) -> None:
  """Refuses a weight layer's activation other than ReLU/linear (softmax last)."""
  name = layer.activation.__name__
  allowed = ('softmax', 'linear') if last else ('relu', 'linear')
  if name not in allowed:
    raise TfpruneError(
        f'model {model.name}: layer {layer.name} has activation {name}, a '
        f'Network computes ReLU between layers: use one of {allowed}')


def _extend(model, layer, producer: str, value: _Value, found, stage) -> _Value:
  """Continues the chain of `value`'s weight layer with `layer` (a `stage`)."""
  if (value.layer == 0 or value.pending or value.shared
      or _outbound(model, producer) != 1
      or found[value.layer - 1].stage >= stage):
    raise _refuse(model, layer, f'it does not continue one weight layer in '
                  f'the order {_ORDER}, on a tensor nothing else reads')
  found[value.layer - 1].stage = stage
  return _Value(value.layer)


def _add(model, layer, inbound, values, found) -> _Value:
  """An Add of an open chain (continued) and an earlier output (the residual)."""
  open_chains = [(values[n].layer, n) for n in inbound
                 if values[n].layer > 0 and not values[n].pending
                 and not values[n].shared and _outbound(model, n) == 1
                 and found[values[n].layer - 1].stage < _ADD]
  if len(inbound) != 2 or not open_chains:
    raise _refuse(model, layer, 'a Network adds two tensors, one of them a '
                  'conv/dense layer not yet past its batch norm')
  main, producer = max(open_chains)
  other = values[inbound[1] if producer == inbound[0] else inbound[0]]
  if other.pending or other.layer == main:
    raise _refuse(model, layer, 'its residual must be an earlier layer\'s output')
  out = _extend(model, layer, producer, values[producer], found, _ADD)
  entry = found[main - 1]
  entry.spec = dataclasses.replace(entry.spec, residual=other.layer)
  return out


def _finish(model, entry: _Open, last: bool) -> Traced:
  if last and entry.relu:
    raise _refuse(model, entry.layer, 'the output layer is followed by a ReLU')
  # The last layer never applies ReLU; it keeps the default flag.
  spec = entry.spec if last else dataclasses.replace(entry.spec, relu=entry.relu)
  return Traced(entry.layer, spec, entry.norm_layer)


def _is_relu(layer) -> bool:
  if isinstance(layer, keras.layers.Activation):
    return layer.activation.__name__ == 'relu'
  return (isinstance(layer, keras.layers.ReLU) and layer.max_value is None
          and float(layer.negative_slope) == 0 and float(layer.threshold) == 0)


def _inbound(model, layer) -> list[str]:
  nodes = layer._inbound_nodes  # pylint: disable=protected-access
  if len(nodes) != 1:
    raise _refuse(model, layer, f'it is called {len(nodes)} times; a Network '
                  'layer is used once')
  return [l.name for l in tf.nest.flatten(nodes[0].inbound_layers)]


def _outbound(model, name: str) -> int:
  return len(model.get_layer(name)._outbound_nodes)  # pylint: disable=protected-access


def _refuse(model, layer, why: str) -> TfpruneError:
  return TfpruneError(
      f'model {model.name}: layer {layer.name} ({type(layer).__name__}) has '
      f'no place in a Network: {why}')
