"""The masks of TF-MOT pruning wrappers: set them by hand, read them back.

`tfmot.sparsity.keras.prune_low_magnitude` gives each pruned layer a
`PruneLowMagnitude` wrapper; its `pruning_vars` are (weight, mask, threshold)
triples, one per prunable weight (for Conv2D and Dense layers only the kernel:
TF-MOT never masks biases). The wrapper multiplies each weight by its mask on
every call, training or not, and recomputes the mask by magnitude only on the
steps where its schedule says so. With `schedules.FixedMask` it never does, so
a mask written here (random or whole-filter masks, which TF-MOT cannot
compute) is the one applied for the whole fit.
"""

from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.training import masking


def wrappers(model: keras.Model, names: Sequence[str]) -> list[keras.layers.Layer]:
  """The pruning wrappers of `model` around the layers called `names`, in order.

  Raises:
    TfpruneError: a named layer is not wrapped.
  """
  by_name = {l.layer.name: l for l in model.layers if hasattr(l, 'pruning_vars')}
  missing = [n for n in names if n not in by_name]
  if missing:
    raise TfpruneError(f'layers {", ".join(missing)} of model {model.name} have no '
                       'pruning wrapper: wrap them with prune_low_magnitude first')
  return [by_name[n] for n in names]


def _kernel_vars(wrapper: keras.layers.Layer):
  if len(wrapper.pruning_vars) != 1:
    raise TfpruneError(
        f'wrapper {wrapper.name} prunes {len(wrapper.pruning_vars)} weights, not '
        'one kernel: only Conv2D and Dense layers are supported')
  weight, mask, _ = wrapper.pruning_vars[0]
  return weight, mask


def inject(model: keras.Model, names: Sequence[str],
           masks: Sequence[np.ndarray]) -> None:
  """Writes one boolean kernel mask into each named layer's wrapper.

  The kernels are masked at once too, so the weights are pruned before the
  first training step (which would mask them anyway).

  Raises:
    TfpruneError: a mask is not boolean or not shaped like its kernel.
  """
  for wrapper, keep in zip(wrappers(model, names), masks, strict=True):
    weight, mask = _kernel_vars(wrapper)
    masking.check_masks([(weight, keep)])
    mask.assign(np.asarray(keep).astype(mask.dtype.as_numpy_dtype))
    weight.assign(weight * mask)


def read(model: keras.Model, names: Sequence[str]) -> list[np.ndarray]:
  """The current kernel mask of each named layer's wrapper, as booleans."""
  return [_kernel_vars(w)[1].numpy() != 0 for w in wrappers(model, names)]
