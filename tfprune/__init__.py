"""tfprune: neural-network pruning experiments with Keras (tf_keras) and TensorFlow.

Modules, one concept each:
  data      datasets by name (local IDX folder or tensorflow-datasets)
  network   a feed-forward network as plain arrays
  weights   the `.npy` weight folder and its manifest
  models    Keras models by name (built with tf_keras, see keras_compat)
  pruning   pruning criteria: pure functions from weights to masks
  evaluate  the pure-tensor forward pass and accuracy
  training  train a registry model and save its weight folder
  sweep     prune at many levels, measure, write CSV/JSON and plots
  plots     draw sweep plots from a sweep CSV
"""

__version__ = '0.1.0'
