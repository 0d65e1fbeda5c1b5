"""The gradual study's configuration, run names, resumption check, result rows and timings."""

import csv
import dataclasses
import io
import json
import pathlib
from typing import Sequence


from tfprune import atomic
from tfprune import registry
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.errors import check_not_empty
from tfprune.keras_io import models
from tfprune.training import distribute
from tfprune.training import epoch_log
from tfprune.training import gradual

ENGINES = ('tfmot', 'keras')
CONFIG_NAME = 'gradual_config.json'
RESULTS_NAME = 'results.csv'
TIMING_NAME = 'timing.json'
RESULT_NAME = 'result.json'
ONESHOT_NAME = 'oneshot.csv'
PLOT_NAME = 'accuracy_vs_sparsity.png'
RESULT_COLUMNS = ('procedure', 'granularity', 'target', 'sparsity', 'accuracy',
                  'keras_accuracy', 'tflite_accuracy', 'nonzero_params',
                  'tflite_bytes', 'tflite_dense_bytes', 'epochs', 'layer_sparsity')
ONESHOT_LEVELS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
_NOT_COMPARED = ('out_dir', 'data_dir')
# Left out of gradual_config.json at their defaults, so the MLP study's
# committed config is unchanged.
_GRAPH_FIELDS = ('model_file', 'data', 'engine')
GRAPH_NAME = 'graph.npz'
KERAS_NAME = 'model.keras'
COMPACT_NAME = 'compact.npz'
COMPACT_KERAS_NAME = 'compact.keras'


@dataclasses.dataclass(frozen=True)
class GradualConfig:
  """How a gradual-pruning study was made; saved as `gradual_config.json`.

  Attributes:
    out_dir: the output folder (see the module docstring).
    weights_dir: the starting `.npy` weight folder (None with `model_file`).
    model: a key of `models.MODELS` matching the weights.
    dataset: a key of `datasets.DATASETS` (unused with `data`).
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    procedures: some of `gradual.PROCEDURES`.
    granularity: 'weight' or 'unit'.
    schedule: gradual schedule, 'polynomial' or 'constant'.
    targets: target sparsities in percent, each in [0, 100).
    epochs: gradual: training epochs.
    begin_step: gradual: first pruning step.
    end_step: gradual: last pruning step (None: derived from the data size).
    frequency: gradual: steps between mask updates (None: derived).
    cycles: iterative: prune-finetune cycles K.
    cycle_epochs: iterative: fine-tuning epochs per cycle.
    batch_size: global batch size.
    learning_rate: initial Adam learning rate (cosine decay over each run).
    prune_output_layer: prune the output layer too.
    strategy: a key of `distribute.STRATEGIES`.
    seed: seeds Python, NumPy and TensorFlow before each run.
    train_limit: train on the first `train_limit` examples only (None: all).
    export_tflite: also write and measure the `.tflite` export.
    model_file: a user's Keras model (`.keras`, `.h5`, SavedModel) to start
      from instead of `weights_dir` (imported and verified by `from_keras`).
    data: a user's `.npz` with x_train, y_train, x_test, y_test instead of
      the registry `dataset`.
    engine: 'tfmot' (TF-MOT wrappers on a tf_keras model) or 'keras'
      (`tfprune.keras.Pruning` on the `model_file` in its own framework,
      Keras 3 on Keras's backend or tf_keras; a weight folder as a Keras 3
      model); None: 'keras' for a Keras 3 `model_file`, else 'tfmot'.
  """
  out_dir: str
  weights_dir: str | None
  model: str = 'mlp'
  dataset: str = 'mnist'
  data_dir: str | None = None
  procedures: tuple[str, ...] = gradual.PROCEDURES
  granularity: str = 'weight'
  schedule: str = 'polynomial'
  targets: tuple[float, ...] = (90.0, 95.0, 97.0, 99.0)
  epochs: int = 8
  begin_step: int = 0
  end_step: int | None = None
  frequency: int | None = None
  cycles: int = 3
  cycle_epochs: int = 3
  batch_size: int = 128
  learning_rate: float = 1e-4
  prune_output_layer: bool = False
  strategy: str = 'default'
  seed: int = 0
  train_limit: int | None = None
  export_tflite: bool = True
  model_file: str | None = None
  data: str | None = None
  allow_other_data: bool = False
  engine: str | None = None

  def __post_init__(self):
    # Not weights_dir: the command builds its defaults with weights_dir=''.
    check_not_empty(self.model_file, '--model_file', 'a Keras model file')
    check_not_empty(self.data, '--data', 'an .npz file')
    if (self.weights_dir is None) == (self.model_file is None):
      raise TfpruneError('give either --weights_dir or --model_file, not both')
    models.get(self.model)
    datasets.get(self.dataset)
    if self.model_file is None and self.data is None:
      models.check_fits(self.model, datasets.get(self.dataset).image_shape,
                        self.dataset)
    distribute.get(self.strategy)
    if self.engine is not None:
      registry.check_choice(self.engine, ENGINES, 'engine')
    if not self.procedures:
      raise TfpruneError('no procedure given: pass --procedures with some of '
                         f'{",".join(gradual.PROCEDURES)}')
    if not self.targets:
      raise TfpruneError('no target sparsity given: pass --targets such as 90,95')
    object.__setattr__(self, 'procedures', registry.check_unique(
        self.procedures, '--procedures'))
    object.__setattr__(self, 'targets', registry.check_unique(
        (pruning.check_level(t, 'target sparsity', include_high=False,
                             hint=': pass e.g. --targets=90,95')
         for t in self.targets), '--targets'))
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')
    for run in self.runs():  # validates procedure, epochs, cycles, ...
      del run

  def runs(self) -> list[gradual.PruningRun]:
    """One `PruningRun` per procedure and target, in that order."""
    return [gradual.PruningRun(
        procedure=p, granularity=self.granularity, target=t / 100,
        schedule=self.schedule, epochs=self.epochs, begin_step=self.begin_step,
        end_step=self.end_step, frequency=self.frequency, cycles=self.cycles,
        cycle_epochs=self.cycle_epochs, batch_size=self.batch_size,
        learning_rate=self.learning_rate,
        prune_output_layer=self.prune_output_layer)
            for p in self.procedures for t in self.targets]


def run_name(run: gradual.PruningRun) -> str:
  """Folder name of a run, e.g. 'gradual-weight-95'."""
  return f'{run.procedure}-{run.granularity}-{100 * run.target:g}'


def config_record(config: GradualConfig) -> dict:
  """The config as saved in `gradual_config.json`."""
  record = dataclasses.asdict(config)
  for name in _GRAPH_FIELDS:
    if record[name] is None:
      record.pop(name)
  if not record['allow_other_data']:  # recorded only when set
    record.pop('allow_other_data')
  return record


def check_resumable(out_dir: pathlib.Path, config: GradualConfig,
                    inputs: dict | None = None) -> None:
  """Refuses to resume into `out_dir` if it was made by another config or
  from other inputs.

  Args:
    out_dir: the study's folder.
    config: this run's config.
    inputs: what this run records of its inputs (`weights_sha256`,
      `model_sha256`, `data`); each one the folder recorded must be equal,
      so a starting network or data replaced between an interrupted run and
      its resume is refused.

  Raises:
    TfpruneError: naming the first setting or input that differs.
  """
  path = out_dir / CONFIG_NAME
  if not path.exists():
    return
  try:
    record = json.loads(path.read_text())
    saved = record['config']
  except (ValueError, KeyError, TypeError):
    raise TfpruneError(f'{path} is not a tfprune gradual config: choose another '
                       '--out_dir') from None
  for key, value in (inputs or {}).items():
    if key in record and record[key] != json.loads(json.dumps(value)):
      what = _differing_file(record[key], value) if key == 'weights_sha256' else key
      raise TfpruneError(
          f'{out_dir} was started from other inputs than this run ({what} '
          'changed since): restore them to resume, or choose another --out_dir')
  current = json.loads(json.dumps(config_record(config)))
  for key in sorted(set(saved) | set(current)):
    if key in _NOT_COMPARED:
      continue
    if saved.get(key) != current.get(key):
      raise TfpruneError(
          f'{out_dir} was made with {key}={saved.get(key)!r} but this run has '
          f'{key}={current.get(key)!r}: pass the same flags to resume, or '
          'choose another --out_dir')


def _differing_file(saved, current: dict) -> str:
  """'weight-1.npy' for two {file: sha256} records that differ there."""
  saved = saved if isinstance(saved, dict) else {}
  names = sorted(set(saved) | set(current))
  return next((f'the starting weights\' {n}' for n in names
               if saved.get(n) != current.get(n)), 'the starting weights')


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Final numbers of one run (a row of `results.csv`; seconds go to `timing_json`)."""
  procedure: str
  granularity: str
  target: float
  sparsity: float
  accuracy: float
  keras_accuracy: float
  tflite_accuracy: float | None
  nonzero_params: int
  tflite_bytes: int | None
  tflite_dense_bytes: int | None
  epochs: int
  layer_sparsity: str


def write_result(path: pathlib.Path, result: RunResult) -> None:
  """Writes a run's `result.json` (last, so its presence means the run is done)."""
  atomic.write_text(path, json.dumps(dataclasses.asdict(result), indent=2) + '\n')


def read_result(path: pathlib.Path) -> RunResult:
  """A finished run's result (a `seconds` entry of an older version is dropped)."""
  record = json.loads(path.read_text())
  record.pop('seconds', None)
  return RunResult(**record)


def run_seconds(run_dir: pathlib.Path) -> float | None:
  """Training seconds of a run, summed over its epochs (None: not recorded)."""
  seconds = epoch_log.read_seconds(run_dir / epoch_log.TIMING_NAME)
  return round(sum(seconds.values()), 1) if seconds else None


def timing_json(runs: Sequence[gradual.PruningRun], out_dir: pathlib.Path) -> str:
  """The study's `timing.json`: each run's training seconds, kept out of `results.csv`."""
  seconds = {run_name(r): run_seconds(out_dir / 'runs' / run_name(r))
             for r in runs}
  return json.dumps({'train_seconds': seconds}, indent=2) + '\n'


@dataclasses.dataclass(frozen=True)
class Study:
  """What `run` returns.

  Attributes:
    results: one per procedure and target, in `config.runs()` order.
    oneshot: the one-shot sweep of the starting weights.
  """
  results: list[RunResult]
  oneshot: list[sweep.SweepRow]


def results_csv(results: Sequence[RunResult]) -> str:
  """The results as CSV text with a header of `RESULT_COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(RESULT_COLUMNS)
  for r in results:
    writer.writerow([
        r.procedure, r.granularity, f'{r.target:g}', f'{r.sparsity:.6f}',
        f'{r.accuracy:.4f}', f'{r.keras_accuracy:.4f}',
        '' if r.tflite_accuracy is None else f'{r.tflite_accuracy:.4f}',
        r.nonzero_params, '' if r.tflite_bytes is None else r.tflite_bytes,
        '' if r.tflite_dense_bytes is None else r.tflite_dense_bytes,
        r.epochs, r.layer_sparsity])
  return out.getvalue()
