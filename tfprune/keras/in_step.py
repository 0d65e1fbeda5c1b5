"""Masks applied inside the compiled train step: one `variable.constraint` per masked trainable array.

Keras 3 optimizers apply each trainable variable's `constraint` right after
its update, inside `optimizer.apply` and `optimizer.stateless_apply`, so
inside the compiled train step of `fit` on the TensorFlow (`tf.function`) and
JAX (`jax.jit`) backends. A `MaskConstraint` multiplies the updated value by
its mask there: the masked entries are zero after every optimizer step, with
no Python work per batch and no extra pass over the weights (XLA fuses the
product into the update).

The masks are read where the step runs. On TensorFlow the step reads the
mask variables themselves. On JAX the compiled step sees only the state it
is handed (trainable, non-trainable, optimizer and metric variables), so the
masks are also tracked as variables of the optimizer (`attach`): they enter
and leave each step with its state, and a mask assigned between steps is the
one the next step uses. They are then saved twice by `save_weights` (with
the pruning state and with the optimizer); both copies hold the same values.
`detach` undoes both.
"""

from typing import Sequence

from keras import ops


class MaskConstraint:
  """`variable.constraint` that applies the user's constraint (if any), then the mask.

  Attributes:
    mask: the mask variable (1 kept, 0 pruned).
    inner: the variable's constraint before pruning, or None.
  """

  def __init__(self, mask, inner=None):
    self.mask, self.inner = mask, inner

  def __call__(self, value):
    if self.inner is not None:
      value = self.inner(value)
    return ops.multiply(value, ops.cast(self.mask, value.dtype))


def _tracked(optimizer) -> set[int]:
  return {id(v) for v in optimizer.variables}


def attach(optimizer, trainable: Sequence, masked: Sequence, masks: Sequence
           ) -> list[int]:
  """Masks the trainable arrays of `masked` inside `optimizer`'s steps.

  Builds the optimizer first (on `trainable`, as `fit` would), so the masks
  come after its own variables in every run and a checkpoint always loads
  back in the same order. Idempotent.

  Args:
    optimizer: the model's compiled Keras 3 optimizer.
    trainable: the model's trainable variables.
    masked: the masked variables, in the order of `masks`.
    masks: one mask variable per masked variable.

  Returns:
    Indices into `masked` of the arrays the optimizer does not update
    (non-trainable ones, such as batch-norm statistics): masked after the
    step by the caller.
  """
  if not optimizer.built:
    optimizer.build(list(trainable))
  known = _tracked(optimizer)
  for mask in masks:
    if id(mask) not in known:
      optimizer._track_variable(mask)  # pylint: disable=protected-access
  updated = {id(v) for v in trainable}
  outside = []
  for i, (variable, mask) in enumerate(zip(masked, masks)):
    if id(variable) not in updated:
      outside.append(i)
    elif not (isinstance(variable.constraint, MaskConstraint)
              and variable.constraint.mask is mask):
      variable.constraint = MaskConstraint(mask, variable.constraint)
  return outside


def detach(optimizer, masked: Sequence, masks: Sequence) -> None:
  """Gives the masked variables their own constraints back and untracks the masks."""
  for variable in masked:
    if isinstance(variable.constraint, MaskConstraint):
      variable.constraint = variable.constraint.inner
  if optimizer is None:
    return
  # Keras has no public untracking: drop them from the list `variables`
  # returns (by identity: a variable's == is elementwise) and from the
  # tracker's ids, as `_track_variable` added them.
  # pylint: disable=protected-access
  drop = {id(m) for m in masks}
  store = optimizer._variables
  for i in reversed([i for i, v in enumerate(store) if id(v) in drop]):
    del store[i]
  optimizer._tracker.stored_ids['variables'] -= drop
