"""Forward-pass throughput of the pruned ViT against the dense one, paired.

Loads two Keras 3 models and times a forward pass of each at --batch_size
in alternating blocks in one process (`benchmark.paired_model_times`), then
prints the median seconds of each and the ratio of medians (dense / pruned:
the pruned model's throughput in multiples of the dense one's). Prints only:
timings depend on the machine and its load, so they are kept out of result
files.

  python experiments/vit_throughput.py
  python experiments/vit_throughput.py --pruned_file=img/vit-unit50/pruned.keras \
      --batch_size=256 --runs=50
"""

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.drivers import benchmark
from tfprune.keras_io import load

_DENSE = flags.DEFINE_string('dense_file', 'weights/vit-fashion_mnist/model.keras',
                             'The dense Keras 3 model.')
_PRUNED = flags.DEFINE_string('pruned_file', 'img/vit-unit50/pruned.keras',
                              'The pruned Keras 3 model (same input shape).')
_BATCH = flags.DEFINE_integer('batch_size', 256, 'Examples per forward pass.')
_RUNS = flags.DEFINE_integer('runs', 50, 'Timed forward passes per model, at least.')


def main(argv):
  del argv
  dense, pruned = (load.load_model(f) for f in (_DENSE.value, _PRUNED.value))
  shape = tuple(dense.input_shape[1:])
  times = benchmark.paired_model_times(dense, pruned, shape, [_BATCH.value],
                                       _RUNS.value)[_BATCH.value]
  print(f'batch {_BATCH.value}: dense {times[0] * 1e3:.1f} ms, pruned '
        f'{times[1] * 1e3:.1f} ms (medians, paired); pruned throughput '
        f'{times[0] / times[1]:.2f}x the dense')


if __name__ == '__main__':
  cli.run(main)
