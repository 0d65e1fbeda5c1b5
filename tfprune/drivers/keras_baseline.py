"""The sweep done the plain way: a tf_keras model, `set_weights` and `predict` per point.

This is what a user without tfprune would write for the default sweep: load
the weights into the Keras model, and for every method and level set the
pruned weights and call `model.predict` on the test set. It is the baseline
the sweep's speed is measured against (`experiments/keras_baseline.py`), and
its accuracies must equal the sweep's (tested), so the comparison is of the
same work.
"""

from typing import Sequence

import numpy as np

from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.keras_io import models
from tfprune.transforms import channel_pruning

PREDICT_BATCH = 10_000


def data_free_methods() -> tuple[str, ...]:
  """The criteria it runs: the registry's that need no calibration data."""
  return importances.names(needs_calibration=False)


def run(weights_dir: str, dataset: str, data_dir: str | None,
        methods: Sequence[str], levels: Sequence[float],
        model_name: str = 'mlp',
        allow_other_data: bool = False) -> list[tuple[str, float, float]]:
  """(method, k, accuracy) for every point, hidden layers pruned as the sweep does.

  Each point is the folder's graph pruned by the registry criterion
  (`channel_pruning.prune_graph`, every layer but the output one), set into
  the Keras model (`models.with_weights`) and scored by `model.predict`.

  Args:
    weights_dir: a weight folder of the registry model `model_name`.
    dataset: a key of `datasets.DATASETS`; its test split is scored.
    data_dir: local data folder, or None.
    methods: registered criteria that need no calibration data
      (`data_free_methods`).
    levels: k in percent.
    model_name: the registry model the weights were trained for.
    allow_other_data: score weights whose manifest names another dataset.

  Raises:
    TfpruneError: a method needs calibration data, or the folder fails its
      checks or was trained on another dataset (unless `allow_other_data`).
  """
  for method in methods:
    if importances.get(method).needs_calibration:
      raise TfpruneError(f'method {method!r} needs calibration data, which the '
                         'plain Keras baseline does not draw: use '
                         f'{", ".join(data_free_methods())}')
  folder = weights.load(weights_dir)
  if not allow_other_data:
    weights.check_made_for(folder, weights_dir, dataset)
  spec = datasets.get(dataset)
  split = datasets.load(dataset, 'test', data_dir)
  model = models.with_weights(
      models.get(model_name)(spec.image_shape, spec.num_classes), folder.graph)
  names = graph_pruning.prunable(folder.graph, None, False)
  rows = []
  for method in methods:
    for k in levels:
      pruned = channel_pruning.prune_graph(folder.graph, method, k, names)
      models.with_weights(model, pruned)
      outputs = model.predict(split.images, batch_size=PREDICT_BATCH, verbose=0)
      rows.append((method, k, float(np.mean(outputs.argmax(1) == split.labels))))
  return rows
