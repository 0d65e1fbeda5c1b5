"""Classification datasets by name: images as float32 in [0, 1], or tables.

A dataset is read from a local folder laid out like `../shared/datasets`
(`mnist/t10k-images-idx3-ubyte.gz`, ...: the official gzip IDX files) when one
is given, by argument or by the `TFPRUNE_DATA_DIR` environment variable, and is
otherwise downloaded with tensorflow-datasets.

A tabular dataset (`penguins`) has a `loader` of its own (see `penguins`): its
examples are feature vectors of shape (d,), held in `Split.images` so that
code written for images runs unchanged, and it has a validation split.
"""

import dataclasses
import gzip
import os
import pathlib
import shutil
import socket
import zlib
from typing import Callable

import numpy as np

from tfprune import registry
from tfprune.data import md5sums
from tfprune.data import penguins
from tfprune.errors import TfpruneError
from tfprune.errors import shorten

DATA_DIR_ENV = 'TFPRUNE_DATA_DIR'
SPLITS = ('train', 'test')
_IDX_PREFIX = {'train': 'train', 'test': 't10k'}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What a dataset is called and what its examples look like.

  Attributes:
    name: registry name, also the sub-folder of a local data folder.
    tfds_name: name of the same data in tensorflow-datasets.
    image_shape: shape of one example: an image, channels last, or (d,) for
      a table of d features.
    num_classes: number of labels, 0 ... num_classes - 1.
    splits: the split names `load` accepts.
    loader: for tables, `loader(split, folder)` -> (features, labels), folder
      None meaning tensorflow-datasets; None for IDX image datasets.
  """
  name: str
  tfds_name: str
  image_shape: tuple[int, ...]
  num_classes: int
  splits: tuple[str, ...] = SPLITS
  loader: Callable[[str, pathlib.Path | None],
                   tuple[np.ndarray, np.ndarray]] | None = None


@dataclasses.dataclass(frozen=True)
class Split:
  """One split of a dataset.

  Attributes:
    images: float32 array (n, height, width, channels) with values in [0, 1]
      (a user's model with several inputs: a dict of arrays by input name).
    labels: int64 array (n,) of class indices (a user's model with several
      outputs: a dict of arrays by output name).
  """
  images: np.ndarray | dict[str, np.ndarray]
  labels: np.ndarray | dict[str, np.ndarray]

  def __len__(self) -> int:
    labels = self.labels
    return len(next(iter(labels.values())) if isinstance(labels, dict) else labels)


DATASETS = {
    'mnist': DatasetSpec('mnist', 'mnist', (28, 28, 1), 10),
    'fashion_mnist': DatasetSpec('fashion_mnist', 'fashion_mnist', (28, 28, 1),
                                 10),
    'penguins': DatasetSpec('penguins', 'penguins/raw',
                            (penguins.NUM_FEATURES,), len(penguins.SPECIES),
                            penguins.SPLITS, penguins.load),
}


def get(name: str) -> DatasetSpec:
  """Returns the dataset called `name`.

  Raises:
    ValueError: `name` is not in `DATASETS`.
  """
  return registry.lookup(DATASETS, name, 'dataset')


def resolve_data_dir(data_dir: str | None) -> str | None:
  """Returns `data_dir`, else `$TFPRUNE_DATA_DIR` made absolute, else None (use tfds).

  The variable is made absolute as it is read: a relative one (as in
  `export TFPRUNE_DATA_DIR=../shared/datasets`) then names the same folder
  whatever the working folder later is, and so do paths made from it.
  """
  if data_dir:
    return data_dir
  from_env = os.environ.get(DATA_DIR_ENV)
  return os.path.abspath(from_env) if from_env else None


def load(name: str, split: str = 'test', data_dir: str | None = None,
         limit: int | None = None) -> Split:
  """Loads one split of a dataset.

  Args:
    name: a key of `DATASETS`.
    split: one of the dataset's splits ('train', 'test'; tables also
      'validation').
    data_dir: local data folder; None falls back to `$TFPRUNE_DATA_DIR`, then
      to a tensorflow-datasets download.
    limit: keep only the first `limit` examples (None keeps all).

  Returns:
    The split with float32 images in [0, 1] and int64 labels.

  Raises:
    TfpruneError: unknown name or split, missing or corrupt files, or no local
      data and tensorflow-datasets cannot provide it.
  """
  spec = get(name)
  registry.check_choice(split, spec.splits, 'split')
  if limit is not None and limit < 1:
    raise TfpruneError(f'limit must be at least 1, got {limit}')
  folder = resolve_data_dir(data_dir)
  if spec.loader is not None:
    return _load_table(spec, split, folder, limit)
  if folder:
    images, labels = _load_local(spec, split, pathlib.Path(folder))
  else:
    images, labels = _load_tfds(spec, split)
  if limit is not None:
    images, labels = images[:limit], labels[:limit]
  return Split(to_unit_interval(images).reshape((-1,) + spec.image_shape),
               labels.astype(np.int64))


def to_unit_interval(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels as float32 in [0, 1]: each value divided by 255 in float32.

  The same values as `pixels.astype(np.float32) / 255.0`, in one pass and
  without the intermediate float32 copy (four times quicker on MNIST's test
  images).
  """
  return np.divide(pixels, np.float32(255), dtype=np.float32)


def _load_table(spec: DatasetSpec, split: str, folder: str | None,
                limit: int | None) -> Split:
  if folder and not pathlib.Path(folder).is_dir():
    raise TfpruneError(
        f'data folder {folder} does not exist: pass an existing folder with '
        f'--data_dir or {DATA_DIR_ENV}, or leave both unset to download with '
        'tensorflow-datasets')
  features, labels = spec.loader(split, pathlib.Path(folder) if folder else None)
  return Split(features[:limit].astype(np.float32), labels[:limit].astype(np.int64))


def _load_local(spec: DatasetSpec, split: str,
                folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  if not folder.is_dir():
    raise TfpruneError(
        f'data folder {folder} does not exist: pass an existing folder with '
        f'--data_dir or {DATA_DIR_ENV}, or leave both unset to download with '
        'tensorflow-datasets')
  prefix = folder / spec.name / _IDX_PREFIX[split]
  md5sums.check(folder, [pathlib.Path(f'{prefix}-{kind}-idx{dims}-ubyte.gz')
                         for kind, dims in (('images', 3), ('labels', 1))])
  images = read_idx(pathlib.Path(f'{prefix}-images-idx3-ubyte.gz'),
                    _IMAGES_MAGIC)
  labels = read_idx(pathlib.Path(f'{prefix}-labels-idx1-ubyte.gz'),
                    _LABELS_MAGIC)
  if images.shape[1:] != spec.image_shape[:2]:
    raise TfpruneError(
        f'{prefix}-images-idx3-ubyte.gz holds images of shape '
        f'{images.shape[1:]}, {spec.name} has {spec.image_shape[:2]}: '
        'replace it with the official file')
  if len(images) != len(labels):
    raise TfpruneError(
        f'{prefix}-images-idx3-ubyte.gz holds {len(images)} images but the '
        f'labels file holds {len(labels)} labels: replace both with the '
        'official files')
  if labels.size and labels.max() >= spec.num_classes:
    raise TfpruneError(
        f'{prefix}-labels-idx1-ubyte.gz holds label {labels.max()}, '
        f'{spec.name} has {spec.num_classes} classes: replace it with the '
        'official file')
  return images, labels


def read_idx(path: pathlib.Path, magic: int) -> np.ndarray:
  """Reads a gzip-compressed IDX file of unsigned bytes.

  Args:
    path: the `.gz` file.
    magic: the expected magic number (2051 for images, 2049 for labels).

  Returns:
    A uint8 array shaped by the header's dimensions.

  Raises:
    TfpruneError: the file is missing, not gzip, truncated, has another magic
      number, or holds a different number of bytes than its header announces.
  """
  fix = 'replace it with the official file (see ../shared/datasets/README.md)'
  if not path.is_file():
    raise TfpruneError(f'missing data file {path}: {fix}')
  try:
    with gzip.open(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise TfpruneError(f'corrupt or truncated data file {path} ({e}): {fix}'
                       ) from None
  ndim = magic - 2048
  header_bytes = 4 * (1 + ndim)
  if len(raw) < header_bytes:
    raise TfpruneError(f'data file {path} is too short for an IDX header: {fix}')
  found_magic = int.from_bytes(raw[:4], 'big')
  if found_magic != magic:
    raise TfpruneError(
        f'data file {path} has magic number {found_magic}, expected {magic}: '
        f'{fix}')
  dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big')
               for i in range(ndim))
  expected = int(np.prod(dims))
  found = len(raw) - header_bytes
  if found != expected:
    raise TfpruneError(
        f'data file {path} holds {found} data bytes but its header announces '
        f'{dims} ({expected} bytes): the file is truncated or corrupt; {fix}')
  return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)


TFDS_HOST = ('storage.googleapis.com', 443)
TFDS_PROBE_SECONDS = 3.0


def tfds_reachable() -> str | None:
  """None if tensorflow-datasets' download host answers, else the reason.

  tfds retries a download for minutes (about 3.5 for MNIST) before it gives
  up; one connection attempt answers in seconds.
  """
  try:
    socket.create_connection(TFDS_HOST, timeout=TFDS_PROBE_SECONDS).close()
  except OSError as e:
    return f'{TFDS_HOST[0]} unreachable: {e.strerror or type(e).__name__}'
  return None


def tfds_load(name: str, split: str, fix: str, **kwargs):
  """`tfds.load(name, split=split, **kwargs)` that fails fast and tidily offline.

  Without a prepared copy in the tfds folder and without network, it fails
  at once instead of after minutes of retries. A failed download removes the
  files and folders it created there (tfds leaves empty `downloads/<name>`,
  `downloads/extracted` and `<name>` folders and `.tmp` entries).

  Args:
    name: the tfds name, e.g. 'mnist' or 'penguins/raw'.
    split: the split to load.
    fix: what the user can do instead, for the error message.

  Raises:
    TfpruneError: tfds cannot provide the data; the message ends with `fix`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(tfds.core.constants.DATA_DIR)
  prepared = any(root.joinpath(*name.split('/')).glob('*/dataset_info.json'))
  if not prepared:
    offline = tfds_reachable()
    if offline:
      raise TfpruneError(f'{name} is not in {root} and tensorflow-datasets '
                         f'cannot download it ({offline}); {fix}')
  before = _tree(root)
  try:
    return tfds.load(name, split=split, **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    # Any failure here (no network, a broken cache) has the same fix.
    _remove_new(root, before)
    raise TfpruneError(f'could not get {name} from tensorflow-datasets '
                       f'({type(e).__name__}: {shorten(str(e), 200)}); {fix}') from None


def _tree(root: pathlib.Path, depth: int = 3) -> set[pathlib.Path]:
  """`root` and the paths under it down to `depth` levels."""
  found, level = set(), [root] if root.exists() else []
  for _ in range(depth + 1):
    found.update(level)
    level = [child for p in level if p.is_dir() and not p.is_symlink()
             for child in p.iterdir()]
  return found


def _remove_new(root: pathlib.Path, before: set[pathlib.Path]) -> None:
  for path in sorted(_tree(root) - before):
    if path.parent in before or path == root:
      if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
      else:
        path.unlink(missing_ok=True)


def _load_tfds(spec: DatasetSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  fix = (f'without network, pass --data_dir or set {DATA_DIR_ENV} to a folder '
         f'holding {spec.name}/{_IDX_PREFIX[split]}-images-idx3-ubyte.gz and '
         f'{_IDX_PREFIX[split]}-labels-idx1-ubyte.gz')
  dataset = tfds_load(spec.tfds_name, split, fix, as_supervised=True)
  # Fixed batches, not batch_size=-1: the latter crashes TensorFlow on
  # datasets of unknown cardinality (tfds mock data among them).
  batches = list(tfds.as_numpy(dataset.batch(10_000)))
  images = np.concatenate([b[0] for b in batches])
  labels = np.concatenate([b[1] for b in batches])
  return images.reshape((-1,) + spec.image_shape[:2]), labels
