"""Gradual pruning of a saved Keras 3 model with the tfprune.keras callback: weight 80%, unit 50%.

Fine-tunes --model_file under `tfprune.keras.Pruning` once per --criteria
(weight: every prunable kernel, attention projections included, to
--weight_target% zeros; unit: --unit_target% of every channel group, in a
ViT its heads and MLP units), folds the masks in or compacts, saves
<criterion>.keras, reloads it with plain Keras and checks the accuracy is
the same; writes results.json to --out_dir (`tfprune.keras.model_file`).

  TFPRUNE_DATA_DIR=../shared/datasets python experiments/prune_keras3.py \
      --model_file=weights/vit-fashion_mnist/model.keras --epochs=1 \
      --out_dir=runs/vit-keras3
  python experiments/prune_keras3.py --criteria=unit --train_limit=4096 \
      --out_dir=/tmp/vit-unit
"""

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.data import datasets
from tfprune.keras import model_file

_D = model_file.ModelFileRun(model_file='', out_dir='')

_MODEL_FILE = flags.DEFINE_string('model_file', 'weights/vit-fashion_mnist/model.keras',
                                  'The Keras 3 model to prune.')
_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/vit-keras3',
                               'Folder for <criterion>.keras and results.json.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, ['mnist', 'fashion_mnist'],
                             'The dataset the model was trained on.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}).')
_CRITERIA = flags.DEFINE_list('criteria', list(_D.criteria),
                              f'Some of {",".join(model_file.CRITERIA)}.')
_WEIGHT_TARGET = flags.DEFINE_float('weight_target', _D.weight_target,
                                    'Percent of zeros in every pruned kernel.')
_UNIT_TARGET = flags.DEFINE_float('unit_target', _D.unit_target,
                                  'Percent of every channel group removed.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Fine-tuning epochs.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size, 'Batch size.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _D.learning_rate,
                                    'Initial Adam rate, cosine-decayed to 0.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Fine-tune on the first N training examples.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')


def main(argv):
  del argv
  config = model_file.ModelFileRun(
      model_file=_MODEL_FILE.value, out_dir=_OUT_DIR.value,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      criteria=tuple(_CRITERIA.value), weight_target=_WEIGHT_TARGET.value,
      unit_target=_UNIT_TARGET.value, epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      train_limit=_TRAIN_LIMIT.value, seed=_SEED.value)
  results = model_file.run(config)
  print(f'dense: {100 * results["dense_accuracy"]:.2f}%')
  for r in results['runs']:
    print(f'{r["criterion"]} {r["target"]:g}: {100 * r["accuracy"]:.2f}% '
          f'(reloaded {100 * r["reloaded_accuracy"]:.2f}%), '
          f'{r["params"]:,} of {r["dense_params"]:,} parameters')
  print(f'wrote {config.out_dir}')


if __name__ == '__main__':
  cli.run(main)
