"""Study B's configuration (`StudyBConfig`): LeNet-5, methods, levels, cycles, finetuning."""

import dataclasses

from tfprune import registry
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.training import finetune

DEFAULT_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Study B's three arms, under the reference's names (the `method` column of
# study_b.csv), and the criterion of the one registry (`importances`)
# each masks with. In the cycles `l1` is TF-MOT's own per-layer magnitude
# pruning, the registry's `weight` rule with TF-MOT's rounding of the count.
ARMS: dict[str, str] = {
    'random': 'random',
    'l1': 'weight',
    'structured_l1': 'filter_l1',
}


def criterion(method: str) -> str:
  """The registry criterion of Study B's arm `method`.

  Raises:
    TfpruneError: `method` is not an arm, listing the valid ones.
  """
  return registry.lookup(ARMS, method, 'pruning method')


@dataclasses.dataclass(frozen=True)
class StudyBConfig:
  """Study B settings; saved as study_b_config.json.

  Attributes:
    weights_dir: trained `lenet5` weight folder.
    out_dir: folder for the CSV, config and plot.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: arms of the study, keys of `ARMS`.
    levels: per-layer levels k in percent (structured_l1 and l1 need k < 100).
    cycles: K prune-finetune cycles.
    finetune_epochs: epochs per cycle (at least 1: TF-MOT's l1 mask update is
      a training step).
    finetune_lr: initial Adam learning rate of each cycle.
    train_limit: finetune on the first N training examples (None: all).
    timing_repeats: timed passes over the test set per network (the fastest
      counts).
    seed: seeds finetuning and random masks.
  """
  weights_dir: str
  out_dir: str
  data_dir: str | None = None
  methods: tuple[str, ...] = tuple(ARMS)
  levels: tuple[float, ...] = DEFAULT_LEVELS
  cycles: int = 3
  finetune_epochs: int = 4
  finetune_lr: float = 1e-4
  train_limit: int | None = None
  timing_repeats: int = 5
  seed: int = 0

  def __post_init__(self):
    if not self.methods or not self.levels:
      raise TfpruneError('give at least one method and one level')
    for m in self.methods:
      criterion(m)
    for k in self.levels:
      pruning.check_level(k)
      if k == 100 and 'structured_l1' in self.methods:
        raise TfpruneError('structured_l1 at k=100 would remove every filter '
                           'of a layer: use levels below 100')
      if k == 100 and 'l1' in self.methods:
        raise TfpruneError('l1 at k=100: TF-MOT keeps at least one weight per '
                           'layer and takes sparsities below 1: use levels '
                           'below 100')
    if self.cycles < 1 or self.timing_repeats < 1:
      raise TfpruneError('cycles and timing_repeats must be at least 1')
    if self.finetune_epochs < 1:
      raise TfpruneError(
          f'finetune_epochs must be at least 1, got {self.finetune_epochs}: '
          'TF-MOT updates the l1 masks on the first training step of a cycle')
    finetune.FitConfig(self.finetune_epochs, learning_rate=self.finetune_lr)
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')
