"""What differs between Keras 3 and tf_keras for a pruner: one small adapter per framework.

The pruner, its criteria, the callback and the finish are written once;
what depends on the framework of the model being pruned goes through its
`Framework` (`of(model)`):

- arrays: `to_numpy` and `masked` (value * mask), with `keras.ops` for
  Keras 3 (the TensorFlow or JAX backend) and `tf` for tf_keras (always
  TensorFlow); `compiled_apply` sets variables to variable * mask in one
  compiled call (`tf.function`, or `jax.jit` on JAX);
- the pruning state, a variable-only layer of the framework's own
  (`PruningState`, `TfKerasPruningState`), attached to the model where its
  saving finds it: Keras 3's `save_weights` and tf_keras's `.keras` and
  `.weights.h5` saving walk the model's attributes; tf_keras's TensorFlow
  checkpoints (`BackupAndRestore`, `save_weights` to a prefix) follow the
  model's tracked dependencies, so the state is tracked there too;
- masks inside the optimizer's step: the optimizers of both frameworks apply
  `variable.constraint` right after the variable's update (Keras 3 in
  `optimizer.apply` and `stateless_apply`; tf_keras in
  `Optimizer.apply_gradients`, the legacy ones in `_distributed_apply`). A
  Keras 3 variable's constraint is an attribute, a `tf.Variable`'s is read
  from `_constraint`. Only JAX needs the masks tracked as optimizer
  variables too (`in_step`); tf_keras's compiled step reads the mask
  variables themselves;
- names: a tf_keras DepthwiseConv kernel is `depthwise_kernel` (Keras 3:
  `kernel`); a variable's path is Keras 3's `path`, tf_keras's `name`
  without its ':0'.
"""

import keras
import numpy as np
from keras import ops

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.keras_io import layers as layers_lib

# tf_keras's names of the attributes Keras 3 calls otherwise, by layer class.
_TF_KERAS_ATTRS = {'DepthwiseConv1D': {'kernel': 'depthwise_kernel'},
                   'DepthwiseConv2D': {'kernel': 'depthwise_kernel'}}


def _add_state_variables(layer, shapes, dtypes) -> None:
  """One mask per shape (ones) and the two step counters, as `layer`'s weights."""
  layer.masks = [layer.add_weight(shape=shape, dtype=dtype, initializer='ones',
                                  trainable=False, name=f'mask_{i}')
                 for i, (shape, dtype) in enumerate(zip(shapes, dtypes))]
  layer.step = layer.add_weight(shape=(), dtype='int32', initializer='zeros',
                                trainable=False, name='step')
  layer.updated_at = layer.add_weight(shape=(), dtype='int32',
                                      initializer='zeros', trainable=False,
                                      name='updated_at')


class PruningState(keras.layers.Layer):
  """Masks and counters of a pruned Keras 3 model: variables only, never called.

  Attributes:
    masks: one float mask per masked array (1 kept, 0 pruned).
    masked: the model's variables the masks apply to (not tracked here).
    optimizer: the optimizer applying the masks in its step, or None.
    step: training steps done.
    updated_at: the step whose masks were last computed (0: none).
  """

  def __init__(self, shapes, dtypes):
    super().__init__(name='tfprune_pruning')
    _add_state_variables(self, shapes, dtypes)

  def call(self, inputs):  # never part of the model's computation
    return inputs


class TfKerasPruningState(keras_compat.keras.layers.Layer):
  """`PruningState` for a tf_keras model (a tf_keras layer, so tf_keras saves it)."""

  def __init__(self, shapes, dtypes):
    super().__init__(name='tfprune_pruning')
    _add_state_variables(self, shapes, dtypes)

  def call(self, inputs):  # never part of the model's computation
    return inputs


def _jit_apply(variables, masks):
  """Sets each variable to variable * mask with one jitted product (JAX)."""
  import jax  # pylint: disable=import-outside-toplevel
  products = jax.jit(lambda values, kept: [ops.multiply(v, m)
                                           for v, m in zip(values, kept)])

  def jitted():
    new = products([v.value for v in variables], [m.value for m in masks])
    for variable, value in zip(variables, new):
      variable.assign(value)
  return jitted


class Keras3:
  """Keras 3 (`import keras`), on the backend Keras runs."""

  name = 'keras3'
  module = keras
  state_class = PruningState
  masks_in_optimizer = True  # for JAX's jitted step (`in_step`)

  def backend(self) -> str:
    return keras.backend.backend()

  def to_numpy(self, value) -> np.ndarray:
    return ops.convert_to_numpy(value)

  def masked(self, value, mask):
    """value * mask, in value's dtype (inside a compiled step too)."""
    return ops.multiply(value, ops.cast(mask, value.dtype))

  def compiled_apply(self, variables, masks):
    """A function setting each variable to variable * mask, compiled for the backend.

    One call per step instead of an eager multiply and assign per array: a
    `tf.function` on TensorFlow, a jitted product on JAX (its variables are
    assigned outside the trace), plain ops elsewhere.
    """
    pairs = list(zip(variables, masks))

    def eager():
      for variable, mask in pairs:
        variable.assign(ops.multiply(variable, mask))
    backend = self.backend()
    if backend == 'tensorflow':
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      return tf.function(eager)
    if backend == 'jax':
      return _jit_apply(variables, masks)
    return eager

  def is_variable(self, value) -> bool:
    return isinstance(value, keras.Variable)

  def path(self, variable) -> str:
    return variable.path

  def attribute(self, layer, attr: str):
    """`layer`'s attribute of Keras 3's name `attr` (None if it has none)."""
    return getattr(layer, attr, None)

  def attach_state(self, model, state) -> None:
    """Keeps `state` as the model's attribute `name` without making it a layer of it."""
    # Not a tracked sublayer: the model's layers and weights stay the
    # user's; Keras's saving walks the model's attributes, so the state is
    # saved with them.
    object.__setattr__(model, STATE_ATTR, state)

  def detach_state(self, model) -> None:
    object.__delattr__(model, STATE_ATTR)

  def set_constraint(self, variable, constraint) -> None:
    variable.constraint = constraint

  def steps_per_execution(self, model) -> int:
    return getattr(model, 'steps_per_execution', 1)


class TfKeras(Keras3):
  """tf_keras (Keras 2, TensorFlow only), where its API differs from Keras 3's."""

  name = 'tf_keras'
  module = keras_compat.keras
  state_class = TfKerasPruningState
  masks_in_optimizer = False

  def backend(self) -> str:
    return 'tensorflow'

  def to_numpy(self, value) -> np.ndarray:
    return np.asarray(value)

  def masked(self, value, mask):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.multiply(value, tf.cast(mask, value.dtype))

  def compiled_apply(self, variables, masks):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    pairs = list(zip(variables, masks))

    @tf.function
    def apply():
      for variable, mask in pairs:
        variable.assign(self.masked(variable, mask))
    return apply

  def is_variable(self, value) -> bool:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return isinstance(value, tf.Variable)

  def path(self, variable) -> str:
    return variable.name.removesuffix(':0')

  def attribute(self, layer, attr: str):
    renamed = _TF_KERAS_ATTRS.get(type(layer).__name__, {}).get(attr, attr)
    return getattr(layer, renamed, None)

  def attach_state(self, model, state) -> None:
    super().attach_state(model, state)
    # TensorFlow checkpoints follow tracked dependencies, not attributes.
    model._track_trackable(state, name=STATE_ATTR, overwrite=True)  # pylint: disable=protected-access

  def detach_state(self, model) -> None:
    super().detach_state(model)
    # pylint: disable=protected-access
    model._self_unconditional_checkpoint_dependencies[:] = [
        ref for ref in model._self_unconditional_checkpoint_dependencies
        if ref.name != STATE_ATTR]
    model._self_unconditional_dependency_names.pop(STATE_ATTR, None)

  def set_constraint(self, variable, constraint) -> None:
    variable._constraint = constraint  # pylint: disable=protected-access

  def steps_per_execution(self, model) -> int:
    steps = getattr(model, '_steps_per_execution', None)
    return 1 if steps is None else int(steps.numpy())


STATE_ATTR = '_tfprune_pruning'
FRAMEWORKS = {'keras3': Keras3(), 'tf_keras': TfKeras()}


def of(model):
  """The `Framework` of `model`: `Keras3` or `TfKeras`.

  Raises:
    TfpruneError: `model` is neither a Keras 3 nor a tf_keras model.
  """
  if not isinstance(model, (keras.Model, keras_compat.keras.Model)):
    raise TfpruneError(
        f'{type(model).__name__} is not a Keras model: tfprune.keras prunes '
        'keras.Model (Keras 3) and tf_keras.Model objects')
  return FRAMEWORKS[layers_lib.framework_of(model)]
