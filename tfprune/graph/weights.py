"""The `.npy` weight folder: `weight-i.npy` (kernel, (in, out)) and `bias-i.npy`.

This is the layout of the original pruning project's `weights/` folder, so a
folder it saved loads unchanged. tfprune adds `manifest.json` (model, dataset,
training config, test accuracy, shapes, sha256 of every file); a folder
without one loads too, its shapes inferred and checked.

A network with layer specs (conv layers, batch norm, pooling; see `layers`)
is saved the same way, with 4-D conv kernels in `weight-i.npy`, batch-norm
parameters as a (4, units) `batchnorm-i.npy` (gamma, beta, moving mean,
moving variance), and each layer's spec and the input shape in the manifest
(format `tfprune-layers-npy`). A manifest without specs means dense layers.
The graph fields of a spec (`source`, `residual`, `relu`, `global_pool`, for
ResNet-18) are written only when they differ from a chain's defaults, so the
manifests of sequential CNNs are unchanged and older ones load as chains.
"""

import dataclasses
import functools
import hashlib
import io
import json
import pathlib
import re
from typing import Any

import numpy as np

from tfprune import atomic
from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.graph import network_graph
from tfprune.graph.ir import Graph
from tfprune.graph.network import Network
from tfprune.errors import shorten

MANIFEST = 'manifest.json'
TIMING = 'timing.json'  # seconds of the run that made the folder, apart
FORMAT = 'tfprune-dense-npy'
LAYERS_FORMAT = 'tfprune-layers-npy'
_KERNEL_RE = re.compile(r'^weight-(\d+)\.npy$')


def kernel_file(layer: int) -> str:
  """File name of the kernel of 1-based `layer`."""
  return f'weight-{layer}.npy'


def bias_file(layer: int) -> str:
  """File name of the bias of 1-based `layer`."""
  return f'bias-{layer}.npy'


def norm_file(layer: int) -> str:
  """File name of the batch-norm parameters of 1-based `layer`."""
  return f'batchnorm-{layer}.npy'


@dataclasses.dataclass(frozen=True)
class WeightFolder:
  """A loaded weight folder.

  Attributes:
    network: the kernels and biases, as the dense-chain type (read only by
      the modules not yet on graphs; use `graph`).
    manifest: the parsed `manifest.json`, or None for the original layout.
    sha256: sha256 of every `.npy` file, by file name.
  """
  network: Network
  manifest: dict[str, Any] | None
  sha256: dict[str, str]

  @functools.cached_property
  def graph(self) -> Graph:
    """The folder's network as a graph, biases included (see
    `transforms.biases.drop_biases` for biases off)."""
    net = self.network
    return network_graph.layers_graph(net.kernels, net.biases, net.specs,
                                      net.norms, net.input_shape)


def load_graph(folder: str | pathlib.Path) -> Graph:
  """The graph of the weight folder at `folder` (see `load`)."""
  return load(folder).graph


def check_made_for(folder: WeightFolder, path: str | pathlib.Path,
                   dataset: str | None = None, model: str | None = None,
                   flag: str = '--weights_dir') -> None:
  """Refuses weights whose manifest names another dataset or model.

  A folder in the original layout (no manifest) passes: nothing is known.

  Args:
    folder: the loaded folder.
    path: where it was loaded from, for the message.
    dataset: the dataset the caller is about to use, if it matters.
    model: the model the caller needs, if it matters.
    flag: the flag that chose the folder, for the message.

  Raises:
    TfpruneError: the manifest records another dataset or model.
  """
  manifest = folder.manifest or {}
  made_as = manifest.get('model')
  if model is not None and made_as is not None and made_as != model:
    raise TfpruneError(
        f'the weights in {path} are a {made_as} model but this needs {model}: '
        f'pass a {flag} with {model} weights (experiments/train.py '
        f'--model={model})')
  made_for = manifest.get('dataset')
  if dataset is not None and made_for is not None and made_for != dataset:
    raise TfpruneError(
        f'the weights in {path} were trained on {made_for}, not {dataset}: pass '
        f'--dataset={made_for}, or a {flag} trained on {dataset}')


def load(folder: str | pathlib.Path) -> WeightFolder:
  """Loads and checks a weight folder.

  Raises:
    TfpruneError: the folder is missing or empty, a layer file is missing or
      corrupt, shapes do not chain, a value is NaN/Inf, or a file does not
      match the manifest.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise TfpruneError(
        f'weights folder {folder} does not exist: pass --weights_dir or train '
        'one with experiments/train.py')
  layers = sorted(int(m.group(1)) for f in folder.iterdir()
                  if (m := _KERNEL_RE.match(f.name)))
  if not layers:
    raise TfpruneError(
        f'weights folder {folder} holds no weight-1.npy: pass a folder of '
        'weight-i.npy/bias-i.npy files or train one with experiments/train.py')
  expected = list(range(1, len(layers) + 1))
  if layers != expected:
    missing = sorted(set(range(1, max(layers) + 1)) - set(layers))
    raise TfpruneError(
        f'weights folder {folder} is missing {kernel_file(missing[0])}: the '
        'folder is incomplete; copy the whole folder again or retrain')
  kernels, biases, sha256 = [], [], {}
  for layer in expected:
    for name, out in ((kernel_file(layer), kernels), (bias_file(layer), biases)):
      array, sha256[name] = _read_npy(folder / name)
      out.append(array)
  specs, input_shape = _peek_specs(folder, len(expected))
  for i, (kernel, bias) in enumerate(zip(kernels, biases), start=1):
    conv = specs is not None and specs[i - 1].kind == 'conv'
    _check_array(folder / kernel_file(i), kernel, ndim=4 if conv else 2)
    _check_array(folder / bias_file(i), bias, ndim=1)
  norms = None
  if specs is not None:
    norms = []
    for i, spec in enumerate(specs, start=1):
      if spec.norm_epsilon is None:
        norms.append(None)
        continue
      norm, sha256[norm_file(i)] = _read_npy(folder / norm_file(i))
      _check_array(folder / norm_file(i), norm, ndim=2,
                   what='(4, units) batch-norm parameters')
      norms.append(norm)
  try:
    if specs is None:
      network = Network(tuple(kernels), tuple(biases))
    else:
      network = Network(tuple(kernels), tuple(biases), specs, tuple(norms),
                        input_shape)
  except TfpruneError as e:
    raise TfpruneError(f'weights folder {folder}: {e}') from None
  manifest = _read_manifest(folder, network, sha256)
  return WeightFolder(network, manifest, sha256)


def save(folder: str | pathlib.Path, network: Network,
         metadata: dict[str, Any] | None = None,
         overwrite: bool = False,
         timing: dict[str, Any] | None = None) -> WeightFolder:
  """Writes `network` and its manifest to `folder`, all or nothing.

  Args:
    folder: destination; it must not exist yet unless `overwrite`.
    network: the weights to save (float32).
    metadata: extra manifest entries (model, dataset, training, accuracy...).
    overwrite: replace an existing folder (only once the new one is complete).
    timing: seconds and other measurements that differ from run to run,
      written to `TIMING` beside the manifest, so that the manifest of a
      reproduced folder is the same bytes.

  Returns:
    The saved folder, as `load` would return it.
  """
  with atomic.replacing_dir(folder, overwrite=overwrite) as tmp:
    sha256 = {}
    norms = network.norms or (None,) * network.num_layers
    for i, (kernel, bias, norm) in enumerate(
        zip(network.kernels, network.biases, norms), start=1):
      arrays = [(kernel_file(i), kernel), (bias_file(i), bias)]
      if norm is not None:
        arrays.append((norm_file(i), norm))
      for name, array in arrays:
        np.save(tmp / name, array, allow_pickle=False)
        sha256[name] = _sha256(tmp / name)
    manifest = dict(metadata or {})
    entries = [{'kernel': kernel_file(i), 'bias': bias_file(i),
                'kernel_shape': list(k.shape), 'bias_shape': list(b.shape)}
               for i, (k, b) in enumerate(
                   zip(network.kernels, network.biases), start=1)]
    if network.specs is not None:
      for i, (entry, spec, norm) in enumerate(
          zip(entries, network.specs, norms), start=1):
        entry['spec'] = spec.to_json()
        if norm is not None:
          entry.update(norm=norm_file(i), norm_shape=list(norm.shape))
    manifest.update({
        'format': FORMAT if network.specs is None else LAYERS_FORMAT,
        'layers': entries,
        'sha256': sha256,
    })
    if network.specs is not None:
      manifest['input_shape'] = list(network.input_shape)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + '\n')
    if timing is not None:
      (tmp / TIMING).write_text(json.dumps(timing, indent=2) + '\n')
  return WeightFolder(network, manifest, sha256)


def _peek_specs(folder: pathlib.Path, num_layers: int
                ) -> tuple[tuple[layers_lib.LayerSpec, ...] | None,
                           tuple[int, ...] | None]:
  """The layer specs and input shape of a layers-format manifest, else Nones.

  A missing or unreadable manifest gives Nones here; `_read_manifest` reports
  what is wrong with it once the arrays are loaded.
  """
  try:
    manifest = json.loads((folder / MANIFEST).read_text())
  except (OSError, ValueError):
    return None, None
  if not isinstance(manifest, dict) or manifest.get('format') != LAYERS_FORMAT:
    return None, None
  try:
    entries = manifest['layers']
    specs = tuple(layers_lib.LayerSpec.from_json(e['spec']) for e in entries)
    input_shape = tuple(int(d) for d in manifest['input_shape'])
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise TfpruneError(
        f'corrupt {folder / MANIFEST} ({type(e).__name__}: {e}): a conv '
        'network cannot load without its layer specs; restore the manifest or '
        'retrain') from None
  if len(specs) != num_layers:
    raise TfpruneError(
        f'{folder / MANIFEST} lists {len(specs)} layers but the folder holds '
        f'{num_layers}: the folder was changed after saving; restore the files')
  return specs, input_shape


def _read_npy(path: pathlib.Path) -> tuple[np.ndarray, str]:
  if not path.is_file():
    raise TfpruneError(
        f'missing {path.name} in {path.parent}: the folder is incomplete; copy '
        'the whole folder again or retrain')
  raw = path.read_bytes()
  try:
    array = np.load(io.BytesIO(raw), allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise TfpruneError(
        f'corrupt weight file {path} '
        f'({shorten((str(e) or type(e).__name__).splitlines()[0], 120)}): copy '
        'it again or retrain') from None
  return array, hashlib.sha256(raw).hexdigest()


def _check_array(path: pathlib.Path, array: np.ndarray, ndim: int,
                 what: str | None = None) -> None:
  if not np.issubdtype(array.dtype, np.floating):
    raise TfpruneError(
        f'{path} holds {array.dtype} values, expected floats: save the '
        'float32 weights')
  if array.ndim != ndim:
    raise TfpruneError(
        f'{path} has shape {array.shape}, expected a {ndim}-D array: save the '
        + (what or {1: 'dense layer\'s bias', 2: 'dense layer\'s kernel',
                    4: 'conv layer\'s kernel'}[ndim]))
  bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
  if bad:
    raise TfpruneError(
        f'{path} holds {bad} NaN/Inf values: the training diverged; retrain '
        '(e.g. with a lower --learning_rate)')


def _read_manifest(folder: pathlib.Path, network: Network,
                   sha256: dict[str, str]) -> dict[str, Any] | None:
  path = folder / MANIFEST
  if not path.exists():
    return None
  try:
    manifest = json.loads(path.read_text())
    layers = manifest['layers']
    recorded = manifest['sha256']
  except (ValueError, KeyError, TypeError) as e:
    raise TfpruneError(
        f'corrupt {path} ({type(e).__name__}: {e}): delete it to load the '
        '.npy files as they are') from None
  if not (isinstance(layers, list) and all(isinstance(e, dict) for e in layers)):
    raise TfpruneError(
        f'corrupt {path}: "layers" is a {type(layers).__name__}, not a list of '
        'objects: restore the manifest or delete it to load the .npy files as '
        'they are')
  if not (isinstance(recorded, dict)
          and all(isinstance(v, str) for v in recorded.values())):
    raise TfpruneError(
        f'corrupt {path}: "sha256" is a {type(recorded).__name__}, not an object '
        'of file name to hex digest: restore the manifest or delete it to load '
        'the .npy files as they are')
  if len(layers) != network.num_layers:
    raise TfpruneError(
        f'{path} lists {len(layers)} layers but the folder holds '
        f'{network.num_layers}: the folder was changed after saving; delete '
        'the manifest or restore the files')
  for i, (entry, kernel) in enumerate(zip(layers, network.kernels), start=1):
    if tuple(entry.get('kernel_shape', ())) != kernel.shape:
      raise TfpruneError(
          f'{folder / kernel_file(i)} has shape {kernel.shape} but {MANIFEST} '
          f'says {tuple(entry.get("kernel_shape", ()))}: restore the file or '
          'delete the manifest')
  for name, digest in sha256.items():
    if recorded.get(name) != digest:
      raise TfpruneError(
          f'{folder / name} does not match the sha256 in {MANIFEST}: the file '
          'was changed after saving; restore it or delete the manifest')
  return manifest


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()
