"""The one place that chooses Keras 2 (`tf_keras`) for every tfprune model.

TF-MOT 0.8 works only with Keras 2. `TF_USE_LEGACY_KERAS=1` makes TensorFlow
and TF-MOT resolve `tf.keras` to `tf_keras` too, so models built here can be
wrapped by `tfmot.sparsity.keras`. Import `keras` from this module, never
`tensorflow.keras` or `keras`.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tf_keras as keras  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ['keras']
