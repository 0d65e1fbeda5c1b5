"""Study B's prune-finetune cycle on TF-MOT wrappers, and its exact check.

`tfmot_cycle` wraps the pruned layers, prunes them to the cycle's level (TF-MOT's
own magnitude masks for l1; for the other arms, masks of the registry's
criterion (`lenet_config.criterion`) computed on the model's graph, injected under
`schedules.FixedMask` otherwise), finetunes and strips; `check_cycle` measures
every pruned layer against the criterion; `prune_finetune` runs the K cycles.
See `study_lenet` for the study.
"""

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow_model_optimization as tfmot

from tfprune.criteria import graph_pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.keras_compat import keras
from tfprune.keras_io.importer import from_keras
from experiments.studies import lenet_config
from experiments.studies.lenet_config import StudyBConfig
from tfprune.training import finetune
from tfprune.training import gradual
from tfprune.training import masking
from tfprune.training import schedules
from tfprune.training import tfmot_masks


def pruned_names(model: keras.Model, layers: Sequence[int]) -> list[str]:
  """Names of the prunable layers (`finetune.prunable`) at indices `layers`."""
  prunable = finetune.prunable(model)
  return [prunable[i].name for i in layers]


@dataclasses.dataclass(frozen=True)
class Cycle:
  """One TF-MOT prune-finetune cycle.

  Attributes:
    wrapped: the finetuned model with its pruning wrappers.
    model: the same layers with the wrappers stripped (`strip_pruning`).
    masks: kernel mask of each prunable layer after the cycle, read from the
      wrappers (None: layer not pruned).
    layers: measured sparsity of each pruned layer (checked by `check_cycle`).
  """
  wrapped: keras.Model
  model: keras.Model
  masks: list[np.ndarray | None]
  layers: list[gradual.LayerSparsity]


def layer_masks(model: keras.Model, method: str, level: float,
                layers: Sequence[int],
                masks: Sequence[np.ndarray | None] | None = None,
                seed: int = 0) -> list[np.ndarray | None]:
  """Per prunable layer, the kernel mask of `method` at `level` on `layers`.

  The kernels are read from the model's graph (`from_keras`, verified
  against the model) and masked by `graph_pruning.kernel_mask` with the
  arm's registry criterion; layer i's `random` draw uses seed + i.

  Args:
    model: a plain (unwrapped) Keras model.
    method: a key of `lenet_config.ARMS`.
    level: per-layer level in percent.
    layers: indices of the prunable layers (`finetune.prunable`) to prune.
    masks: current masks, which only ever shrink (None: all kept).
    seed: base seed of `random`.

  Returns:
    One mask per prunable layer: new masks on `layers`, `masks` elsewhere.
  """
  criterion = lenet_config.criterion(method)
  graph = from_keras(model)
  out = list(masks) if masks is not None else [None] * len(
      finetune.prunable(model))
  for i, name in zip(layers, pruned_names(model, layers)):
    node = graph.node(name)
    out[i] = graph_pruning.kernel_mask(
        criterion, node.params['kernel'], level,
        ops.get(node.op).kernels['kernel'], seed=seed + i, mask=out[i])
  return out


def _unit_masks(masks: Sequence[np.ndarray | None], layers: Sequence[int]
                ) -> dict[int, np.ndarray]:
  """Kept units of each pruned layer: any kept weight in the unit's slice."""
  return {i: masks[i].reshape(-1, masks[i].shape[-1]).any(axis=0) for i in layers}


def tfmot_cycle(model: keras.Model, method: str, level: float,
                layers: Sequence[int], masks: Sequence[np.ndarray | None] | None,
                train: datasets.Split, config: StudyBConfig) -> Cycle:
  """Wraps `layers` of `model`, prunes them to `level` percent, finetunes, strips.

  The stripped model shares its layers (and weights) with `model`.

  Args:
    model: a plain (unwrapped) Keras model; trained in place.
    method: a key of `lenet_config.ARMS`.
    level: per-layer level of this cycle, in percent.
    layers: indices of the prunable layers to prune.
    masks: the masks after the previous cycle (None: first cycle).
    train: finetuning data.
    config: finetuning settings and seed.

  Raises:
    TfpruneError: a layer's sparsity is not what the criterion asked for (see
      `check_cycle`).
  """
  names = pruned_names(model, layers)
  callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
  injected = None
  if method == 'l1':
    wrapped = gradual.wrap(model, names, schedules.first_step(level / 100))
  else:
    injected = layer_masks(model, method, level, layers, masks, config.seed)
    wrapped = gradual.wrap(model, names, schedules.FixedMask())
    tfmot_masks.inject(wrapped, names, [injected[i] for i in layers])
    if method == 'structured_l1':
      prunable = finetune.prunable(model)
      callbacks.append(masking.KeepMasked(
          [(prunable[i].bias, keep)
           for i, keep in _unit_masks(injected, layers).items()]))
  finetune.fit(wrapped, train.images, train.labels,
               finetune.FitConfig(config.finetune_epochs,
                                  learning_rate=config.finetune_lr),
               callbacks)
  after = list(masks) if masks is not None else [None] * len(
      finetune.prunable(model))
  for i, mask in zip(layers, tfmot_masks.read(wrapped, names)):
    after[i] = mask
  stripped = gradual.strip(wrapped)
  measured = check_cycle(stripped, method, level, layers, masks, after, injected)
  return Cycle(wrapped, stripped, after, measured)


def check_cycle(model: keras.Model, method: str, level: float,
                layers: Sequence[int],
                before: Sequence[np.ndarray | None] | None,
                after: Sequence[np.ndarray | None],
                injected: Sequence[np.ndarray | None] | None
                ) -> list[gradual.LayerSparsity]:
  """Measures each pruned layer of a stripped model after a cycle.

  Required zeros: l1, `schedules.tfmot_pruned_count` at level/100; random and
  structured_l1, the zeros of the injected mask, which the wrapper must still
  hold unchanged.

  Returns:
    The measured sparsity of each pruned layer.

  Raises:
    TfpruneError: a kernel or wrapper mask has another number of zeros than
      required, a mask revives a weight pruned in an earlier cycle, or a
      pruned structured unit has a non-zero bias.
  """
  prunable = finetune.prunable(model)
  out = []
  for i in layers:
    layer, mask = prunable[i], after[i]
    kernel = layer.kernel.numpy()
    if injected is None:
      required = schedules.tfmot_pruned_count(kernel.size, level / 100)
    else:
      required = int(np.sum(~injected[i]))
      if not np.array_equal(mask, injected[i]):
        raise TfpruneError(
            f'layer {layer.name}: the wrapper changed the injected {method} '
            'mask during finetuning: its schedule must never update masks '
            '(schedules.FixedMask)')
    measured = gradual.LayerSparsity(layer.name, kernel.size,
                                     int(np.sum(kernel == 0)), required)
    mask_zeros = int(np.sum(~mask))
    if measured.zeros != required or mask_zeros != required:
      raise TfpruneError(
          f'layer {layer.name}: {method} at k={level:g}% asks for {required} '
          f'zero weights of {kernel.size}, the kernel has {measured.zeros} and '
          f'the TF-MOT mask {mask_zeros}: the mask update missed the first '
          'training step of the cycle or the mask was not applied')
    if before is not None and before[i] is not None and np.any(mask & ~before[i]):
      raise TfpruneError(
          f'layer {layer.name}: the {method} cycle at k={level:g}% revived '
          f'{int(np.sum(mask & ~before[i]))} weights pruned in an earlier '
          'cycle: masks must only shrink')
    if method == 'structured_l1':
      units = _unit_masks(after, [i])[i]
      if np.any(layer.bias.numpy()[~units] != 0):
        raise TfpruneError(
            f'layer {layer.name}: pruned units have non-zero biases after '
            'finetuning: their biases must be held at zero (masking.KeepMasked)')
    out.append(measured)
  return out


def prune_finetune(model: keras.Model, method: str, k: float,
                   layers: Sequence[int], train: datasets.Split,
                   config: StudyBConfig) -> keras.Model:
  """K TF-MOT prune-finetune cycles of `method` up to level k.

  Cycle c prunes to k·c/K (see `tfmot_cycle`). The weights of `model` are
  trained in place.

  Returns:
    The stripped model after the last cycle (it shares `model`'s layers).
  """
  masks = None
  for cycle in range(1, config.cycles + 1):
    result = tfmot_cycle(model, method, k * cycle / config.cycles, layers,
                         masks, train, config)
    model, masks = result.model, result.masks
  return model
