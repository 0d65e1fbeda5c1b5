"""tfprune engines: gradual pruning of the MNIST MLP through TF-MOT and through tfprune.keras (TF and JAX backends).

The same schedule, optimizer, batches and layers in three engines: TF-MOT
wrappers on tf_keras, and the `tfprune.keras.Pruning` callback on Keras 3
with the TensorFlow and the JAX backend. Runs alternate between engines, so
the seconds per epoch are compared under the same load. Writes results.csv
(accuracy, zeros per pruned layer), timing.json (seconds per epoch, medians,
ratio to TF-MOT) and engines_config.json to --out_dir. Examples:

  tfprune engines --out_dir=runs/engines
  tfprune engines --targets=90 --epochs=2 --train_limit=4096 \
      --out_dir=/tmp/engines-smoke
"""

import json
import pathlib

from absl import flags

from tfprune.commands import defaults
from tfprune.drivers import engine_comparison

_DEFAULTS = engine_comparison.EngineComparison(out_dir='', weights_dir='')

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', defaults.in_clone('weights', 'mlp-mnist'),
    'Starting MLP weight folder.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Local data folder (else '
                                '$TFPRUNE_DATA_DIR).')
_ENGINES = flags.DEFINE_list('engines', list(_DEFAULTS.engines),
                             f'Some of {",".join(engine_comparison.ENGINES)}.')
_TARGETS = flags.DEFINE_list('targets', [f'{t:g}' for t in _DEFAULTS.targets],
                             'Sparsity of each hidden layer, in percent.')
_EPOCHS = flags.DEFINE_integer('epochs', _DEFAULTS.epochs, 'Epochs per run.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _DEFAULTS.batch_size,
                                   'Batch size.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _DEFAULTS.learning_rate,
                                    'Initial Adam learning rate (cosine decay).')
_SEED = flags.DEFINE_integer('seed', _DEFAULTS.seed, 'Seed of every run.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Train on the first N images only.')
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Output folder (required).')


def main(argv):
  del argv
  config = engine_comparison.EngineComparison(
      out_dir=defaults.required(_OUT_DIR.value, 'out_dir', 'an output folder'),
      weights_dir=defaults.required(
          _WEIGHTS_DIR.value, 'weights_dir', 'the starting MLP weight folder'),
      data_dir=_DATA_DIR.value, engines=tuple(_ENGINES.value),
      targets=tuple(float(t) for t in _TARGETS.value), epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      seed=_SEED.value, train_limit=_TRAIN_LIMIT.value)
  records = engine_comparison.run(config)
  out = pathlib.Path(config.out_dir)
  times = json.loads((out / engine_comparison.TIMING_NAME).read_text())
  print(engine_comparison.summary(records, times), end='')
  print(f'wrote {out / engine_comparison.RESULTS_NAME} and '
        f'{out / engine_comparison.TIMING_NAME}')

