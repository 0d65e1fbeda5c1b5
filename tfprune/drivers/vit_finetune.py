"""How the ViT study gets from the dense ViT to a fine-tuned one with fewer heads and units.

Two recipes (`RECIPES`), each trained for the same number of epochs:

- `one_shot`: `unit` removes k% of every channel group at once
  (`graph_compaction.prune_and_compact`), and the smaller Keras 3 model is
  fine-tuned;
- `gradual`: the dense model is fine-tuned with the `tfprune.keras.Pruning`
  callback, `unit` on a polynomial schedule (Zhu & Gupta 2017) from 0 to k%
  over the first `training.schedules.PRUNING_FRACTION` of the steps, the rest
  fine-tuning at k%; the masked model is then compacted through the graph
  (`tfprune.keras.compact`, checked to compute what the masked one does).

Both fine-tune with the distillation loss of Hinton et al. 2015 on the
student's logits (the model with its softmax dropped, `logits_twin`):

    teacher_weight * T^2 * CE(softmax(teacher / T), softmax(student / T))
      + (1 - teacher_weight) * CE(labels, softmax(student))

At T = 1 this is the cross-entropy with the targets teacher_weight *
(the dense model's probabilities) + (1 - teacher_weight) * (one-hot labels).
Adam, the rate cosine-decayed to 0 over the run.
"""

import math
from typing import Callable

import numpy as np

from tfprune import keras_compat
from tfprune import registry
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.keras import callback as callback_lib
from tfprune.keras import finish
from tfprune.keras import schedules
from tfprune.keras_io import build
from tfprune.training import schedules as step_plans
from tfprune.transforms import graph_compaction


def logits_twin(model):
  """A copy of `model` without its final softmax (the same weights, copied).

  Raises:
    TfpruneError: the model does not end with a Dense softmax layer.
  """
  K = keras_compat.keras_module('keras3')
  last = model.layers[-1]
  if not (isinstance(last, K.layers.Dense)
          and last.get_config()['activation'] == 'softmax'):
    raise TfpruneError(f'the model ends with {type(last).__name__} '
                       f'{last.name!r}, not a Dense softmax: the distillation '
                       'reads the logits under that softmax')

  def clone(layer):
    config = layer.get_config()
    if layer is last:
      config['activation'] = 'linear'
    return type(layer).from_config(config)
  twin = K.models.clone_model(model, clone_function=clone)
  twin.set_weights(model.get_weights())
  return twin


def teacher_targets(dense, train: datasets.Split) -> np.ndarray:
  """The dense model's logits beside the one-hot labels: (n, 2 · classes)."""
  logits = logits_twin(dense).predict(train.images, batch_size=500, verbose=0)
  onehot = np.eye(logits.shape[-1], dtype=np.float32)[train.labels]
  return np.concatenate([logits.astype(np.float32), onehot], axis=-1)


def distillation_loss(temperature: float, teacher_weight: float) -> Callable:
  """The loss of the module docstring, on targets from `teacher_targets`."""
  K = keras_compat.keras_module('keras3')
  ops = K.ops

  def loss(targets, logits):
    classes = logits.shape[-1]
    teacher, onehot = targets[:, :classes], targets[:, classes:]
    soft = ops.softmax(teacher / temperature, axis=-1)
    distilled = -ops.sum(
        soft * ops.log_softmax(logits / temperature, axis=-1), axis=-1)
    hard = -ops.sum(onehot * ops.log_softmax(logits, axis=-1), axis=-1)
    return (teacher_weight * temperature ** 2 * distilled
            + (1 - teacher_weight) * hard)
  return loss


def _fit(twin, rate: float, train: datasets.Split, targets: np.ndarray,
         config, callbacks=()) -> None:
  """Fits the logits twin for `config.epochs` (Adam, cosine-decayed rate)."""
  K = keras_compat.keras_module('keras3')
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  twin.compile(optimizer=K.optimizers.Adam(
      K.optimizers.schedules.CosineDecay(rate, steps)),
               loss=distillation_loss(config.temperature, config.teacher_weight))
  K.utils.set_random_seed(config.seed)
  twin.fit(train.images, targets, batch_size=config.batch_size,
           epochs=config.epochs, shuffle=True, verbose=2,
           callbacks=list(callbacks))


def one_shot(dense_file: str, graph: Graph, rate: float,
             train: datasets.Split, targets: np.ndarray, config):
  """`unit` at k% at once, then the smaller model fine-tuned; a Keras 3 model."""
  del dense_file  # the graph holds the dense model
  compacted = graph_compaction.prune_and_compact(graph, 'unit', config.k)[1]
  twin = logits_twin(build.to_keras(compacted, 'keras3'))
  _fit(twin, rate, train, targets, config)
  # A fresh model holds the weights without the optimizer's state.
  final = build.to_keras(compacted, 'keras3')
  final.set_weights(twin.get_weights())
  return final


def gradual(dense_file: str, graph: Graph, rate: float,
            train: datasets.Split, targets: np.ndarray, config):
  """`unit` raised from 0 to k% while fine-tuning, then compacted; a Keras 3 model."""
  del graph  # the callback imports the model it prunes
  K = keras_compat.keras_module('keras3')
  twin = logits_twin(K.models.load_model(dense_file, compile=False))
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  plan = step_plans.plan_gradual(steps)
  pruning = callback_lib.Pruning(
      schedules.PolynomialDecay(0.0, config.k / 100, plan.begin_step,
                                plan.end_step, frequency=plan.frequency),
      'unit', data=train.images[:16])
  _fit(twin, rate, train, targets, config, [pruning])
  finish.strip_pruning(twin)
  masked = K.models.load_model(dense_file, compile=False)
  masked.set_weights(twin.get_weights())
  return finish.compact(masked, data=train.images[:16])


RECIPES = {'one_shot': one_shot, 'gradual': gradual}
"""Recipe name -> function(dense_file, dense graph, rate, train, targets,
config) returning the fine-tuned smaller Keras 3 model."""


def fine_tuned(recipe: str, dense_file: str, graph: Graph, rate: float,
               train: datasets.Split, targets: np.ndarray, config):
  """The model `recipe` (a key of `RECIPES`) makes at Adam rate `rate`."""
  return registry.lookup(RECIPES, recipe, 'recipe')(
      dense_file, graph, rate, train, targets, config)
