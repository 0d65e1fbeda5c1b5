"""Opens a saved Keras model, whichever Keras wrote it.

`.keras` files and `.h5` files record the Keras version that saved them:
Keras 3 files are opened with Keras 3 (`import keras`, TensorFlow 2.21's
default), Keras 2 files with tf_keras, which cannot read Keras 3's formats.
A SavedModel folder with Keras metadata is opened with tf_keras; one without
(`tf.saved_model.save`, Keras 3's `export`) holds no layers to read and is
refused. Every failure is one `TfpruneError` line.
"""

import json
import pathlib
import zipfile

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.errors import shorten

FORMATS = '.keras, .h5 or a SavedModel folder'


def saved_version(path: pathlib.Path) -> str:
  """The Keras version recorded in a `.keras`/`.h5` file, or '' if none."""
  if path.suffix == '.keras':
    try:
      with zipfile.ZipFile(path) as archive:
        return str(json.loads(archive.read('metadata.json')).get('keras_version', ''))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
      raise TfpruneError(f'{path} is not a readable .keras file ({e}): save '
                         'the model again with model.save("model.keras")') from None
  import h5py  # pylint: disable=import-outside-toplevel
  try:
    with h5py.File(path, 'r') as f:
      version = f.attrs.get('keras_version', '')
  except OSError as e:
    raise TfpruneError(f'{path} is not a readable .h5 file ({e}): save the '
                       'model again with model.save("model.keras")') from None
  return version.decode() if isinstance(version, bytes) else str(version)


def load_model(path: str | pathlib.Path):
  """The Keras model saved at `path`, uncompiled.

  Raises:
    TfpruneError: the path is missing, of another format, or Keras cannot
      read it (e.g. it needs custom objects).
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise TfpruneError(f'model file {path} does not exist: pass a {FORMATS}')
  if path.is_dir():
    if not (path / 'saved_model.pb').exists():
      raise TfpruneError(f'{path} is a folder but not a SavedModel: pass a {FORMATS}')
    if not (path / 'keras_metadata.pb').exists():
      raise TfpruneError(
          f'{path} is a SavedModel without Keras layers (written by '
          'tf.saved_model.save or Keras 3 export): save the Keras model as '
          '.keras instead')
    return _open(path, keras3=False)
  if path.suffix not in ('.keras', '.h5', '.hdf5'):
    raise TfpruneError(f'{path} has suffix {path.suffix or "(none)"}: pass a '
                       f'{FORMATS}')
  version = saved_version(path)
  return _open(path, keras3=version.startswith('3'))


def _open(path: pathlib.Path, keras3: bool):
  try:
    keras = keras_compat.keras_module('keras3' if keras3 else 'tf_keras')
    return keras.models.load_model(path, compile=False)
  except Exception as e:  # pylint: disable=broad-except
    # Keras raises many types here (ValueError, TypeError, OSError, ...).
    first = shorten(str(e), 300)  # Keras's whole message, on one line
    raise TfpruneError(
        f'{"Keras 3" if keras3 else "tf_keras"} cannot load {path}: '
        f'{type(e).__name__}: {first}: save it again without custom objects, '
        'or pass the model object to tfprune.from_keras') from None
