"""tfprune gradual (alias finetune): prune while fine-tuning (TF-MOT), gradual and iterative, against one-shot.

Writes per-run epoch logs, exported `.npy` weights and `.tflite` files,
results.csv, oneshot.csv and accuracy_vs_sparsity.png to --out_dir (seconds
only to timing.json); the same command resumes an interrupted study and ends
with the same weights as an uninterrupted one. Target sparsities are
percentages of each pruned layer, in [0, 100). A CNN weight folder or your
own Keras model (--model_file) prunes every Dense, Conv2D and DepthwiseConv2D
kernel and hands back model.keras (and, for units, the smaller
compact.keras). Examples:

  tfprune gradual --model_file=my.keras --data=my.npz --granularity=unit \
      --targets=50 --out_dir=runs/mine
  tfprune finetune --model=lenet5 --weights_dir=weights/lenet5-mnist \
      --targets=90 --procedures=gradual --out_dir=runs/lenet-gradual
  tfprune gradual --strategy=mirrored --logical_cpus=2 --targets=90 \
      --epochs=2 --procedures=gradual --out_dir=/tmp/mirrored
  tfprune gradual --engine=keras --targets=90 --procedures=gradual \
      --out_dir=runs/mlp-keras3
"""


import pathlib

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune import cli  # pylint: disable=g-import-not-at-top
from tfprune.commands import defaults  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.errors import TfpruneError  # pylint: disable=g-import-not-at-top
from tfprune.errors import check_not_empty  # pylint: disable=g-import-not-at-top
from tfprune.keras_io import models  # pylint: disable=g-import-not-at-top
from tfprune.drivers import gradual_study  # pylint: disable=g-import-not-at-top
from tfprune.training import distribute  # pylint: disable=g-import-not-at-top
from tfprune.training import gradual  # pylint: disable=g-import-not-at-top

_DEFAULTS = gradual_study.GradualConfig(out_dir='', weights_dir='')

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', defaults.in_clone('weights', 'mlp-mnist'),
    'Starting .npy weight folder (default: the prebuilt MNIST MLP).')
_MODEL_FILE = flags.DEFINE_string(
    'model_file', None, 'Your Keras model (.keras, .h5 or SavedModel folder, '
    'tf_keras or Keras 3) to prune instead of --weights_dir.')
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_train, y_train, x_test, y_test '
    '(integer labels), shaped as the model takes them; replaces --dataset.')
_MODEL = flags.DEFINE_enum('model', _DEFAULTS.model, list(models.MODELS),
                           'Model the weights belong to.')
_DATASET = flags.DEFINE_enum(
    'dataset', _DEFAULTS.dataset, list(datasets.DATASETS),
    'Dataset to fine-tune and test on (with --model_file, only when given; '
    'else pass --data).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else a '
    'tensorflow-datasets download).')
_PROCEDURES = flags.DEFINE_list(
    'procedures', list(_DEFAULTS.procedures),
    'gradual (one smooth schedule) and/or iterative (K prune-finetune cycles).')
_GRANULARITY = flags.DEFINE_enum(
    'granularity', _DEFAULTS.granularity, list(gradual.GRANULARITIES),
    'weight: TF-MOT magnitude pruning; unit: whole neurons by L2 norm.')
_SCHEDULE = flags.DEFINE_enum(
    'schedule', _DEFAULTS.schedule, list(gradual.SCHEDULES),
    'Gradual schedule: polynomial (Zhu & Gupta cubic) or constant.')
_TARGETS = flags.DEFINE_list(
    'targets', [f'{t:g}' for t in _DEFAULTS.targets],
    'Target sparsities in percent of each pruned layer, each in [0, 100).')
_EPOCHS = flags.DEFINE_integer('epochs', _DEFAULTS.epochs,
                               'Gradual: training epochs per target.')
_BEGIN_STEP = flags.DEFINE_integer('begin_step', _DEFAULTS.begin_step,
                                   'Gradual: first pruning step.')
_END_STEP = flags.DEFINE_integer(
    'end_step', None, 'Gradual: last pruning step, where the target is reached '
    '(default: about 2/3 of training, on the --frequency grid).')
_FREQUENCY = flags.DEFINE_integer(
    'frequency', None, 'Gradual: steps between mask updates (default: the '
    'pruning span / 40).')
_CYCLES = flags.DEFINE_integer('cycles', _DEFAULTS.cycles,
                               'Iterative: prune-finetune cycles K.')
_CYCLE_EPOCHS = flags.DEFINE_integer('cycle_epochs', _DEFAULTS.cycle_epochs,
                                     'Iterative: fine-tuning epochs per cycle.')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', _DEFAULTS.batch_size, 'Global batch size (split across '
    'replicas by the strategy).')
_LEARNING_RATE = flags.DEFINE_float(
    'learning_rate', _DEFAULTS.learning_rate,
    'Initial Adam learning rate, cosine-decayed over each run.')
_PRUNE_OUTPUT_LAYER = flags.DEFINE_bool(
    'prune_output_layer', False, 'Prune the output layer too (default: only '
    'the hidden layers).')
_STRATEGY = flags.DEFINE_enum(
    'strategy', _DEFAULTS.strategy, list(distribute.STRATEGIES),
    'tf.distribute strategy: default (one device, GPU if seen), mirrored (all '
    'GPUs, else all logical CPUs), multiworker (cluster from $TF_CONFIG).')
_LOGICAL_CPUS = flags.DEFINE_integer(
    'logical_cpus', 0, 'Split the CPU into this many logical devices before '
    'TensorFlow starts (0: leave it); lets --strategy=mirrored run without GPUs.')
_SEED = flags.DEFINE_integer('seed', _DEFAULTS.seed, 'Seed of each run.')
_TRAIN_LIMIT = flags.DEFINE_integer(
    'train_limit', None, 'Fine-tune on the first N training examples only.')
_ENGINE = flags.DEFINE_enum(
    'engine', None, list(gradual_study.ENGINES),
    'tfmot: TF-MOT wrappers on a tf_keras model; keras: the tfprune.keras '
    'Pruning callback on a Keras 3 model (TensorFlow or JAX backend, from '
    '$KERAS_BACKEND). Default: keras for a Keras 3 --model_file, else tfmot.')
_EXPORT_TFLITE = flags.DEFINE_bool(
    'export_tflite', True, 'Also write each pruned model as .tflite '
    '(EXPERIMENTAL_SPARSITY) and report its size.')
_VERBOSE = flags.DEFINE_integer('verbose', 2, 'Keras progress output: 0, 1, 2.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                      provenance.OVERRIDE_HELP)
_OUT_DIR = flags.DEFINE_string(
    'out_dir', defaults.in_clone('img', 'gradual'),
    'Output folder; re-running the same command resumes it.')


def _targets(texts) -> tuple[float, ...]:
  values = []
  for text in texts:
    try:
      values.append(float(text))
    except ValueError:
      raise TfpruneError(f'target sparsity must be a percentage in [0, 100), '
                         f'got {text!r}: pass e.g. --targets=90,95') from None
  return tuple(values)


def main(argv):
  del argv
  # Before the checks that read an empty path as given.
  check_not_empty(_MODEL_FILE.value, '--model_file', 'a Keras model file')
  if _MODEL_FILE.value is not None and _WEIGHTS_DIR.present:
    raise TfpruneError('--weights_dir and --model_file both given: pass one '
                       'network to prune')
  defaults.check_data_given(_MODEL_FILE.value, _DATA.value, _DATASET.present)
  if _LOGICAL_CPUS.value:
    distribute.split_cpu(_LOGICAL_CPUS.value)
  config = gradual_study.GradualConfig(
      out_dir=defaults.required(_OUT_DIR.value, 'out_dir', 'folder'),
      model_file=_MODEL_FILE.value, data=_DATA.value,
      weights_dir=None if _MODEL_FILE.value else defaults.network(
          _WEIGHTS_DIR.value),
      model=_MODEL.value,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      procedures=tuple(p.strip() for p in _PROCEDURES.value),
      granularity=_GRANULARITY.value, schedule=_SCHEDULE.value,
      targets=_targets(_TARGETS.value), epochs=_EPOCHS.value,
      begin_step=_BEGIN_STEP.value, end_step=_END_STEP.value,
      frequency=_FREQUENCY.value, cycles=_CYCLES.value,
      cycle_epochs=_CYCLE_EPOCHS.value, batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value,
      prune_output_layer=_PRUNE_OUTPUT_LAYER.value, strategy=_STRATEGY.value,
      seed=_SEED.value, train_limit=_TRAIN_LIMIT.value,
      export_tflite=_EXPORT_TFLITE.value, engine=_ENGINE.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  study = gradual_study.run(config, cli.command_line(), verbose=_VERBOSE.value)
  print(gradual_study.format_table(study))
  print(f'wrote {pathlib.Path(config.out_dir) / gradual_study.RESULTS_NAME}, '
        'exported weights and plots')


def interrupted() -> str:
  """What a Ctrl-C leaves: finished runs and the last epoch's checkpoint."""
  return (f'interrupted: finished runs in {_OUT_DIR.value} are kept; rerun the '
          'same command to resume')
