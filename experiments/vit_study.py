"""The committed ViT with half its heads and MLP units removed, fine-tuned, timed.

Removes k% of each block's attention heads and MLP hidden units (`unit`),
fine-tunes the smaller Keras 3 model for --epochs at each --learning_rates,
distilled from the dense model (--teacher_weight)
(the best on a held-out validation slice of the training split is kept),
scores it on the test split, times it against the dense model at batch
--timing_batch in one process (alternating), and writes pruned.keras,
results.json and timing.json to --out_dir (`tfprune.drivers.vit_study`).

  TFPRUNE_DATA_DIR=../shared/datasets python experiments/vit_study.py \
      --model_file=weights/vit-fashion_mnist/model.keras --out_dir=img/vit-unit50
"""


from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags
import tensorflow as tf

from tfprune.data import datasets
from tfprune.drivers import vit_study

_D = vit_study.ViTStudyConfig(model_file='', out_dir='')

_MODEL_FILE = flags.DEFINE_string('model_file', 'weights/vit-fashion_mnist/model.keras',
                                  'The dense Keras 3 ViT.')
_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/vit-unit50',
                               'Folder for pruned.keras, results.json, timing.json.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, ['mnist', 'fashion_mnist'],
                             'The dataset the ViT was trained on.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_K = flags.DEFINE_float('k', _D.k, 'Percent of each group (heads, MLP units) removed.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Fine-tuning epochs per rate.')
_RATES = flags.DEFINE_list('learning_rates', [str(r) for r in _D.learning_rates],
                           'Adam rates tried; the best on the validation slice is kept.')
_TEACHER = flags.DEFINE_float(
    'teacher_weight', _D.teacher_weight,
    "Share of the dense model's probabilities in the fine-tuning targets "
    '(distillation; 0: labels only).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size,
                                   'Fine-tuning examples per step.')
_VALIDATION = flags.DEFINE_integer('validation_size', _D.validation_size,
                                   'Training examples held out to choose the rate.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')
_TIMING_RUNS = flags.DEFINE_integer('timing_runs', _D.timing_runs,
                                    'Timed forward passes per model, at least.')


def main(argv):
  del argv
  config = vit_study.ViTStudyConfig(
      model_file=_MODEL_FILE.value, out_dir=_OUT_DIR.value,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value, k=_K.value,
      epochs=_EPOCHS.value,
      learning_rates=tuple(float(r) for r in _RATES.value),
      teacher_weight=_TEACHER.value,
      batch_size=_BATCH_SIZE.value, validation_size=_VALIDATION.value,
      seed=_SEED.value, timing_runs=_TIMING_RUNS.value)
  tf.config.experimental.enable_op_determinism()
  results, timing = vit_study.run(config)
  print(f'dense {100 * results["dense_test_accuracy"]:.2f}%, pruned '
        f'{100 * results["pruned_test_accuracy"]:.2f}% after fine-tuning at '
        f'{results["chosen_learning_rate"]:g}; {results["pruned_params"]:,} of '
        f'{results["dense_params"]:,} parameters; throughput at batch '
        f'{timing["batch_size"]}: {timing["throughput_ratio"]:.2f}x; wrote '
        f'{config.out_dir}')


if __name__ == '__main__':
  cli.run(main)
