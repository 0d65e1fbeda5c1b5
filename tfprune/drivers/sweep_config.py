"""How a sweep is made: `SweepConfig`, checked on construction and saved as `sweep_config.json`."""

import dataclasses
from typing import Sequence

from tfprune import registry
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.drivers import allocated
from tfprune.errors import TfpruneError
from tfprune.errors import check_not_empty

DEFAULT_LEVELS = (0, 25, 50, 60, 70, 80, 90, 95, 97, 99)
DEFAULT_METHODS = ('weight', 'unit')


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """How a sweep was made; saved as `sweep_config.json` beside its results.

  Attributes:
    weights_dir: the `.npy` weight folder to prune.
    out_dir: where the CSV, the config and the plots go.
    dataset: a key of `datasets.DATASETS`; its test split is used.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: criteria: names of `importances.REGISTRY` (in a saved config),
      or importance objects (a user's criterion; the row is named by its
      `name`).
    levels: pruning levels k in percent, each in [0, 100].
    use_biases: add biases in the forward pass (False: original project).
    prune_output_layer: prune the output layer too (default: hidden only).
    calibration_size: training examples drawn for data-aware methods and bias
      correction (unused otherwise).
    calibration_seed: seed of that draw.
    bias_correction: after pruning, shift each pruned layer's bias so its mean
      pre-activation where the dense unit is active matches the dense network's.
    sparse_kernels: let the evaluator use CSR kernels where they measured faster.
    save_pruned: also write each pruned network's compact export to
      `out_dir/pruned/<method>-k<k>.npz`.
    model_file: a user's Keras model (`.keras`, `.h5`, SavedModel) to prune
      instead of `weights_dir`; imported and verified by `keras_io`.
    data: a user's `.npz` (`user_data`) instead of the registry `dataset`.
    prune_layers: Keras layer names to prune (model files only; default:
      every layer with a kernel but the output layer).
    allocation: a key of `allocators.ALLOCATIONS` (`tfprune.allocation`):
      how the overall level k is spread over the pruned layers (`uniform`:
      k% of each; otherwise k% of all their weights together).
    sensitivity_csv: the scan (`experiments/sensitivity.py`) that
      `allocation='sensitivity'` reads.
    pattern: 'N:M' to add rows of every weight-level method under that N:M
      pattern (named e.g. `weight-2:4`), or None.
    save_keras: also write each pruned network as a plain Keras model to
      `out_dir/pruned/<method>-k<k>.keras`, compacted where structured
      removal allows (`pruned_keras`).
    allow_other_data: score a network on other data than the one its files
      record (`data.provenance`), on purpose.
    score_output: the output of a model with several outputs whose accuracy
      is the `accuracy` column (model files only; default: the first output;
      the others get `accuracy_<output>` columns).
  """
  weights_dir: str | None
  out_dir: str
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = DEFAULT_METHODS
  levels: tuple[float, ...] = DEFAULT_LEVELS
  use_biases: bool = True
  prune_output_layer: bool = False
  calibration_size: int = reconstruction.DEFAULT_CALIBRATION_SIZE
  calibration_seed: int = 0
  bias_correction: bool = False
  sparse_kernels: bool = True
  save_pruned: bool = False
  model_file: str | None = None
  data: str | None = None
  prune_layers: tuple[str, ...] = ()
  allocation: str = allocated.UNIFORM
  sensitivity_csv: str | None = None
  pattern: str | None = None
  save_keras: bool = False
  allow_other_data: bool = False
  score_output: str | None = None

  def __post_init__(self):
    check_paths_given(self)
    if (self.weights_dir is None) == (self.model_file is None):
      raise TfpruneError('give either --weights_dir or --model_file, not both')
    if self.model_file is None and self.score_output is not None:
      raise TfpruneError('--score_output names an output of a --model_file: '
                         'drop it, or pass the model file')
    object.__setattr__(self, 'prune_layers', tuple(self.prune_layers))
    if not self.methods:
      raise TfpruneError(
          f'no pruning method given: pass --methods with some of '
          f'{",".join(importances.REGISTRY)}')
    for method in self.methods:
      importances.get(method)
    if self.bias_correction and not self.use_biases:
      raise TfpruneError(
          'bias correction changes biases but use_biases is false: drop '
          '--bias_correction or set --use_biases=true')
    if self.calibration_size < 0:
      raise TfpruneError(
          f'calibration_size must be >= 0, got {self.calibration_size}')
    if self.needs_calibration and self.calibration_size == 0:
      raise TfpruneError(
          f'{self.calibration_user} needs calibration data but calibration_size '
          'is 0: set --calibration_size to a positive number such as '
          f'{reconstruction.DEFAULT_CALIBRATION_SIZE}')
    if not self.levels:
      raise TfpruneError('no pruning level given: pass --levels such as 0,50,90')
    object.__setattr__(self, 'methods',
                       registry.check_unique(self.methods, '--methods'))
    object.__setattr__(self, 'levels', registry.check_unique(
        (pruning.check_level(k) for k in self.levels), '--levels'))
    if self.data is None:
      datasets.get(self.dataset)
    allocated.check(self.allocation, self.sensitivity_csv, self.pattern,
                    self.methods)

  @property
  def needs_calibration(self) -> bool:
    return self.bias_correction or any(
        importances.get(m).needs_calibration for m in self.methods)

  @property
  def calibration_user(self) -> str:
    """What needs calibration data, for error messages."""
    needy = [importances.get(m).name for m in self.methods
             if importances.get(m).needs_calibration]
    return f'method {needy[0]!r}' if needy else 'bias correction'


_PATHS = {'model_file': 'a Keras model file', 'data': 'an .npz file',
          'weights_dir': 'a weight folder'}


def check_paths_given(config) -> None:
  """Refuses an empty `model_file`, `data` or `weights_dir` (`--flag=`)."""
  for name, what in _PATHS.items():
    check_not_empty(getattr(config, name, None), f'--{name}', what)


def parse_levels(texts: Sequence[str]) -> tuple[float, ...]:
  """Parses level strings such as ['0', '50', '97.5'] into checked floats.

  Raises:
    TfpruneError: a text is not a number or not in [0, 100].
  """
  levels = []
  for text in texts:
    try:
      value = float(text)
    except ValueError:
      raise TfpruneError(
          f'level {text!r} is not a number: give --levels as comma-separated '
          'percentages such as 0,50,90') from None
    levels.append(pruning.check_level(value))
  return tuple(levels)


# Fields for user models; left out of a weight-folder sweep's record at their
# defaults, so its sweep_config.json is unchanged.
_MODEL_FIELDS = ('model_file', 'data', 'prune_layers')
# Allocation fields, left out at their defaults for the same reason.
_ALLOCATION_FIELDS = ('allocation', 'sensitivity_csv', 'pattern')


def config_record(config: SweepConfig) -> dict:
  """The config as saved in `sweep_config.json`."""
  record = dataclasses.asdict(config)
  record['methods'] = [importances.get(m).name for m in config.methods]
  defaults = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
  if config.model_file is None:
    for name in _MODEL_FIELDS:
      if record[name] == defaults[name]:
        record.pop(name)
  for name in _ALLOCATION_FIELDS + ('save_keras', 'allow_other_data',
                                    'score_output'):
    if record[name] == defaults[name]:
      record.pop(name)
  return record
