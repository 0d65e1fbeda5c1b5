"""Builders shared by the tests: small networks, IDX files, script runs."""

import csv
import gzip
import os
import pathlib
import subprocess
import sys

import numpy as np

from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.data import penguins
from tfprune.graph.network import Network
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.transforms import channel_pruning
from tfprune.graph import groups

REPO = pathlib.Path(__file__).resolve().parents[1]
PREBUILT = REPO / 'weights' / 'mlp-mnist'
MLP_SHAPES = ((784, 1000), (1000, 1000), (1000, 500), (500, 200), (200, 10))


def random_network(shapes=((12, 8), (8, 6), (6, 3)), seed: int = 0) -> Network:
  """A network with normal kernels and biases of the given kernel shapes."""
  rng = np.random.default_rng(seed)
  return Network(tuple(rng.normal(size=s).astype(np.float32) for s in shapes),
                 tuple(rng.normal(size=s[1]).astype(np.float32) for s in shapes))


def write_idx(path: pathlib.Path, magic: int, dims, payload: bytes | None = None,
              compress: bool = True) -> pathlib.Path:
  """Writes an IDX file; `payload` defaults to zeros of the header's size."""
  if payload is None:
    payload = bytes(int(np.prod(dims)))
  raw = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in dims)
  raw += payload
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


def write_dataset(folder: pathlib.Path, name: str = 'mnist', split: str = 't10k',
                  n: int = 20, seed: int = 0) -> pathlib.Path:
  """A valid tiny IDX dataset folder `folder/name/{split}-...-ubyte.gz`."""
  rng = np.random.default_rng(seed)
  write_idx(folder / name / f'{split}-images-idx3-ubyte.gz', 2051, (n, 28, 28),
            rng.integers(0, 256, size=n * 784, dtype=np.uint8).tobytes())
  write_idx(folder / name / f'{split}-labels-idx1-ubyte.gz', 2049, (n,),
            rng.integers(0, 10, size=n, dtype=np.uint8).tobytes())
  return folder


def run_script(name: str, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
  """Runs `experiments/<name>.py` with `args` in a fresh interpreter."""
  full_env = dict(os.environ, **(env or {}))
  return subprocess.run([sys.executable, str(REPO / 'experiments' / f'{name}.py'),
                         *args], capture_output=True, text=True, env=full_env,
                        cwd=REPO, timeout=600, check=False)


# Run by `load_in_fresh_process`: plain Keras only, never tfprune.
_FRESH_LOADER = r"""
import json, sys
import numpy as np
framework, jobs = sys.argv[1], json.loads(sys.argv[2])
if framework == 'tf_keras':
  import tf_keras as K
else:
  import keras as K
results = {}
for key, path, inputs in jobs:
  model = K.models.load_model(path, compile=False)
  results[key] = {
      'outputs': np.asarray(model(np.load(inputs), training=False)).tolist(),
      'params': int(model.count_params()),
      'shapes': {l.name: [list(w.shape) for w in l.get_weights()]
                 for l in model.layers},
      'layer_modules': sorted({type(l).__module__ for l in model.layers})}
results = {'models': results,
           'tfprune_imported': any(m.startswith('tfprune') for m in sys.modules)}
print(json.dumps(results))
"""


def load_in_fresh_process(framework: str, jobs) -> dict:
  """Loads saved models with plain Keras in one fresh interpreter.

  Args:
    framework: 'keras3' or 'tf_keras', the Keras the interpreter imports.
    jobs: (key, model file, `.npy` inputs) triples.

  Returns:
    {'models': {key: {'outputs', 'params', 'shapes' (by layer name),
    'layer_modules'}}, 'tfprune_imported': bool}. One interpreter for all the
    files (a TensorFlow import each would dominate the tests' time).
  """
  import json  # pylint: disable=g-import-not-at-top
  jobs = [[key, str(path), str(inputs)] for key, path, inputs in jobs]
  out = subprocess.run([sys.executable, '-c', _FRESH_LOADER, framework,
                        json.dumps(jobs)], capture_output=True, text=True,
                       check=False, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


# experiments/ scripts that run a `tfprune` command under another name.
SCRIPT_COMMANDS = {'holdout_data': 'holdout', 'structured_benchmark': 'structured',
                   'compare_engines': 'engines'}


def run_main(name: str, *args: str, capsys) -> tuple[int, str, list[str]]:
  """Runs a `tfprune` command, or `experiments/<name>.py`, in this process.

  `name` is a command (`sweep`), a script running one (`holdout_data`) or a
  script of the studies (`study_a`). Much cheaper than `run_script` (no
  interpreter, no TensorFlow import). The command's flags are defined for the
  call and removed after it (its module is imported afresh each time).

  Returns:
    (exit status, stdout, the lines of stderr).
  """
  # Imported here: absl's help flags must exist before the baseline is taken.
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  import runpy  # pylint: disable=g-import-not-at-top
  from tfprune import cli  # pylint: disable=g-import-not-at-top
  from tfprune import commands  # pylint: disable=g-import-not-at-top
  app.define_help_flags()
  base = set(flags.FLAGS)
  command = SCRIPT_COMMANDS.get(name, name)
  try:
    if command in commands.COMMANDS or command in commands.ALIASES:
      capsys.readouterr()
      with pytest.raises(SystemExit) as exit_info:
        commands.main([command, *args])
    else:
      namespace = runpy.run_path(str(REPO / 'experiments' / f'{name}.py'),
                                 run_name=f'_script_{name}')
      capsys.readouterr()
      flags.FLAGS.unparse_flags()
      with pytest.raises(SystemExit) as exit_info:
        cli.run(namespace['main'], namespace.get('interrupted', cli.INTERRUPTED),
                argv=[name, *args], doc=namespace['__doc__'],
                program=f'python experiments/{name}.py')
  finally:
    for flag in set(flags.FLAGS) - base:
      delattr(flags.FLAGS, flag)
    flags.FLAGS.unparse_flags()
    for module in [m for m in sys.modules if m.startswith('tfprune.commands.')]:
      if module != 'tfprune.commands.defaults':
        del sys.modules[module]
  out, err = capsys.readouterr()
  code = exit_info.value.code
  return 0 if code is None else code, out, err.splitlines()


def assert_same_up_to_rounding(actual, expected, rel: float = 1e-5) -> None:
  """`actual` equals `expected` up to float32 rounding at the outputs' scale.

  For two float32 computations of one function that sum in different orders
  (a CSR and a dense matmul, the graph evaluator and Keras, one example and a
  batch, a compacted network and the masked one). Their rounding errors grow
  with the magnitude of the sums, about the largest |output|, not with each
  element: an output near 0 carries the same absolute error as the largest
  one. So the tolerance is `rel` of max |expected| for every element; 1e-5 is
  about 84 float32 ulps (eps 1.19e-7) at that scale (the Fashion CNN's CSR
  logits, scale up to 20, differ by at most 1.3e-6 of it). An absolute 1e-5
  missed by 2e-7 on a CPU with another SIMD width and summation order.
  """
  expected = np.asarray(expected)
  scale = float(np.max(np.abs(expected))) if expected.size else 0.0
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
  """The lines of stderr that tfprune printed (TF's own log lines dropped)."""
  return [l for l in result.stderr.splitlines() if l.startswith('error:')]


def penguins_csv(data_dir: str) -> pathlib.Path:
  """The shared penguins table under a data folder."""
  return pathlib.Path(data_dir) / 'penguins' / 'penguins.csv'


def write_penguins(folder: pathlib.Path, rows: list[dict[str, str]]) -> pathlib.Path:
  """Writes `rows` (dicts of the penguins columns) as `folder/penguins/penguins.csv`."""
  path = folder / 'penguins' / 'penguins.csv'
  path.parent.mkdir(parents=True, exist_ok=True)
  lines = [','.join(penguins.COLUMNS)]
  lines += [','.join(r[c] for c in penguins.COLUMNS) for r in rows]
  path.write_text('\n'.join(lines) + '\n')
  return path


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
  """The rows of a CSV file with a header."""
  with pathlib.Path(path).open(newline='') as f:
    return list(csv.DictReader(f))


def tiny_classifier():
  """A small MNIST-shaped classifier: Flatten, Dense 16, Dense 12, Dense 10."""
  return keras.Sequential([
      keras.Input(shape=(28, 28, 1)), keras.layers.Flatten(),
      keras.layers.Dense(16, activation='relu', name='dense_1'),
      keras.layers.Dense(12, activation='relu', name='dense_2'),
      keras.layers.Dense(10, activation='softmax', name='dense_3')])


def tiny_split(n: int = 256, seed: int = 0) -> datasets.Split:
  """Random 28x28x1 images with random labels 0-9 (enough to exercise training)."""
  rng = np.random.default_rng(seed)
  return datasets.Split(rng.random((n, 28, 28, 1), dtype=np.float32),
                        rng.integers(0, 10, size=n).astype(np.int64))


def resnet18(image_shape=(28, 28, 1), width: float = 0.125, seed: int = 1):
  """ResNet-18 with random, non-trivial batch-norm parameters and statistics.

  Gamma ~ N(1, 1), beta ~ N(0, 1), moving mean ~ N(0, 0.1^2), moving variance
  in [0.5, 1.5); the output layer gets a random bias.
  """
  keras.utils.set_random_seed(seed)
  model = models.build_resnet18(image_shape, 10, width=width)
  rng = np.random.default_rng(seed)
  randomize_norms(model, rng)
  model.layers[-1].bias.assign(0.1 * rng.normal(size=10))
  return model


def randomize_norms(model, rng: np.random.Generator) -> None:
  """Gives every batch norm of `model` random parameters and statistics.

  Gamma ~ N(1, 1), beta ~ N(0, 1), moving mean ~ N(0, 0.1^2), moving variance
  in [0.5, 1.5): a freshly built model's (1, 0, 0, 1) would hide a wrong order.
  """
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      c = layer.gamma.shape[0]
      layer.set_weights([rng.normal(size=c) + 1, rng.normal(size=c),
                         0.1 * rng.normal(size=c), rng.random(c) + 0.5])


def keras_logits(model, images: np.ndarray) -> np.ndarray:
  """`model.predict` without the output layer's softmax (a linear clone)."""

  def clone(layer):
    config = layer.get_config()
    if layer is model.layers[-1]:
      config['activation'] = 'linear'
    return layer.__class__.from_config(config)

  linear = keras.models.clone_model(model, clone_function=clone)
  linear.set_weights(model.get_weights())
  return linear.predict(images, verbose=0)


def random_images(shape, n: int = 16, seed: int = 0) -> np.ndarray:
  """n float32 images of `shape` uniform in [0, 1)."""
  return np.random.default_rng(seed).random((n,) + tuple(shape)).astype(np.float32)


def silence_units(graph, k, positive_bias=None):
  """`graph` with k% of every prunable group's channels silenced.

  The channels are those `unit_l1` prunes from the group's first producer;
  every producer's kernel slices, biases and batch-norm gamma and beta are
  set to 0 there, so they output exactly 0 (the bias of node
  `positive_bias` is set to +0.5 instead: a constant, not silent, output).
  """
  changes = {}
  for group in channel_pruning.chosen(groups.analyse(graph)):
    kernel = graph.node(group.name).params['kernel']
    keep = pruning.unit_l1_mask(kernel, k)
    pruned = np.flatnonzero(~keep.reshape(-1, keep.shape[-1]).any(axis=0))
    for s in group.slices:
      if s.role == groups.CONSUMER or s.param not in (
          'kernel', 'bias', 'gamma', 'beta'):
        continue
      value = changes.setdefault(s.node, {}).setdefault(
          s.param, np.array(graph.node(s.node).params[s.param]))
      index = [slice(None)] * value.ndim
      index[s.axis] = s.indices[pruned].ravel()
      fill = 0.5 if (s.param, s.node) == ('bias', positive_bias) else 0.0
      value[tuple(index)] = fill
  return graph.with_params(changes)


def numpy_chain_logits(kernels, biases, images) -> np.ndarray:
  """An oracle independent of tfprune's evaluators: a dense ReLU chain in numpy.

  `images` are flattened; a bias of None is left out.
  """
  x = np.asarray(images, np.float32).reshape(len(images), -1)
  for i, (kernel, bias) in enumerate(zip(kernels, biases)):
    x = x @ kernel + (0 if bias is None else bias)
    if i < len(kernels) - 1:
      x = np.maximum(x, 0)
  return x


def numpy_network_logits(network, images, use_biases: bool = True) -> np.ndarray:
  """`numpy_chain_logits` of a dense-chain network's arrays."""
  biases = network.biases if use_biases else (None,) * len(network.kernels)
  return numpy_chain_logits(network.kernels, biases, images)
