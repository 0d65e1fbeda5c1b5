"""The one place that chooses Keras 2 (`tf_keras`) for every tfprune model.

TF-MOT 0.8 works only with Keras 2. `TF_USE_LEGACY_KERAS=1` makes TensorFlow
and TF-MOT resolve `tf.keras` to `tf_keras` too, so models built here can be
wrapped by `tfmot.sparsity.keras`. Import `keras` from this module, never
`tensorflow.keras` or `keras`.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tf_keras as keras  # pylint: disable=g-import-not-at-top,wrong-import-position

FRAMEWORKS = ('keras3', 'tf_keras')


def keras_module(framework: str):
  """The Keras package of `framework`: Keras 3 (`import keras`) or tf_keras.

  Users' models may be either; tfprune's own models and TF-MOT use tf_keras.

  Raises:
    ValueError: `framework` is neither.
  """
  if framework == 'tf_keras':
    return keras
  if framework == 'keras3':
    import keras as keras3  # pylint: disable=import-outside-toplevel
    return keras3
  raise ValueError(f'unknown framework {framework!r}: choose one of '
                   f'{", ".join(FRAMEWORKS)}')


__all__ = ['FRAMEWORKS', 'keras', 'keras_module']
