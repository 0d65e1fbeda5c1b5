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

from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.graph import weights
from tfprune.keras_io import models

PREDICT_BATCH = 10_000


def run(weights_dir: str, dataset: str, data_dir: str | None,
        methods: Sequence[str], levels: Sequence[float],
        model_name: str = 'mlp',
        allow_other_data: bool = False) -> list[tuple[str, float, float]]:
  """(method, k, accuracy) for every point, hidden layers pruned as the sweep does.

  Args:
    weights_dir: a dense-chain weight folder (the sweep's default).
    dataset: a key of `datasets.DATASETS`; its test split is scored.
    data_dir: local data folder, or None.
    methods: keys of `pruning.PRUNERS` (the data-free criteria).
    levels: k in percent.
    model_name: the registry model the weights were trained for.
    allow_other_data: score weights whose manifest names another dataset.

  Raises:
    TfpruneError: the folder fails its checks or was trained on another
      dataset (unless `allow_other_data`).
  """
  folder = weights.load(weights_dir)
  if not allow_other_data:
    weights.check_made_for(folder, weights_dir, dataset)
  spec = datasets.get(dataset)
  split = datasets.load(dataset, 'test', data_dir)
  model = models.load_network(
      models.get(model_name)(spec.image_shape, spec.num_classes), folder.network)
  network = folder.network
  layers = pruning.prunable_layers(network.num_layers)
  rows = []
  for method in methods:
    for k in levels:
      pruned = network.masked(pruning.network_masks(network, method, k, layers))
      models.load_network(model, pruned)
      outputs = model.predict(split.images, batch_size=PREDICT_BATCH, verbose=0)
      rows.append((method, k, float(np.mean(outputs.argmax(1) == split.labels))))
  return rows
