"""Gradual and iterative pruning of prebuilt weights at several targets.

For each procedure and target sparsity, `run` trains one model from the
starting network, exports the result (for a weight folder, as an `.npy`
weight folder in the layout of `weights/`, so the sweep and the benchmark
work on it) and as a sparse `.tflite` file, and writes, in `out_dir`:

  gradual_config.json        the config (resuming refuses a different one)
  runs/<procedure>-<granularity>-<k>/
      epochs.csv             per-epoch loss, accuracy, test accuracy, sparsity
      timing.json            per-epoch seconds (kept out of every result file)
      weights/               the pruned network as an .npy weight folder
      model.tflite           TFLite export with EXPERIMENTAL_SPARSITY
      result.json            the run's final numbers (written last: done)
      tensorboard/           TF-MOT PruningSummaries (weight level)
  results.csv                one row per run (`RESULT_COLUMNS`)
  timing.json                each run's training seconds
  oneshot.csv                one-shot sweep of the starting weights
  accuracy_vs_sparsity.png   gradual and iterative against one-shot

Target sparsities are percentages in [0, 100) of each pruned layer's weights
(or units), as in the one-shot sweep. Re-running the same command resumes:
finished runs are skipped and an interrupted one continues from its last
finished epoch, ending with the same weights and logs as an uninterrupted run
(`training.resumable`). No result file holds seconds, so results are the same
bytes on every run of the same command.

Every start is a graph: a weight folder (the MLP, LeNet-5, the Fashion CNN,
ResNet-18) as its registry model with the folder's weights, or a user's
Keras model (`model_file`, with `data` or a registry `dataset`), trains
through `gradual_graph` (TF-MOT on the graph's tf_keras twin, or, with
`engine` 'keras' or a Keras 3 model, `tfprune.keras.Pruning`): every Dense,
Conv2D and DepthwiseConv2D kernel but the output layer's is pruned, units
remove coupled channels. The one-shot rows are the sweep's of the starting
network (a folder's own graph). Besides `weights/` (weight folders only) and
`model.tflite`, each run folder holds:

      graph.npz              the pruned network as a tfprune graph file
      model.keras            it as a plain Keras model of the starting
                             model's framework (tf_keras or Keras 3)
      compact.npz, compact.keras   units only: the removed channels gone
"""

from tfprune.drivers import gradual_graph
from tfprune.graph import weights
from tfprune.training import distribute
# The study's config, names and rows, used by callers as gradual_study.X.
from tfprune.drivers.gradual_config import (  # pylint: disable=unused-import
    COMPACT_KERAS_NAME, COMPACT_NAME, CONFIG_NAME, ENGINES, GRAPH_NAME, KERAS_NAME,
    ONESHOT_LEVELS, ONESHOT_NAME, PLOT_NAME, RESULT_COLUMNS, RESULTS_NAME,
    RESULT_NAME, TIMING_NAME, GradualConfig, RunResult, Study, check_resumable,
    config_record, read_result, results_csv, run_name, timing_json, write_result)


def run(config: GradualConfig, command: str | None = None,
        verbose: int = 2) -> Study:
  """Runs (or resumes) the study and writes its outputs; see the module doc.

  Args:
    config: the study.
    command: the command line, recorded in each exported weight folder.
    verbose: Keras progress output.

  Returns:
    The results and the one-shot comparison.

  Raises:
    TfpruneError: bad input (checked before anything is written), or a run
      missed its target sparsity.
  """
  # First: MultiWorkerMirroredStrategy must exist before any TensorFlow op.
  strategy = distribute.make(config.strategy)
  start = None if config.model_file else weights.load(config.weights_dir)
  return gradual_graph.run_graph(config, strategy, start, command, verbose)


def format_table(study: Study) -> str:
  """Accuracy per target: one-shot next to each procedure, for the terminal."""
  results = study.results
  by_k = {row.k: row.accuracy for row in study.oneshot}
  procedures = list(dict.fromkeys(r.procedure for r in results))
  header = f'{"target":>7} {"one-shot":>9} ' + ' '.join(
      f'{p:>10}' for p in procedures) + '  tflite/dense'
  lines = [header]
  for target in dict.fromkeys(r.target for r in results):
    cells = {r.procedure: r for r in results if r.target == target}
    sizes = [f'{c.tflite_bytes / c.tflite_dense_bytes:.1%}'
             for c in cells.values() if c.tflite_bytes]
    lines.append(
        f'{target:>6g}% {100 * by_k.get(target, float("nan")):>8.2f}% ' +
        ' '.join(f'{100 * cells[p].accuracy:>9.2f}%' if p in cells else
                 f'{"":>10}' for p in procedures) + '  ' + ' '.join(sizes))
  return '\n'.join(lines)
