"""tfprune: how much of your Keras network can you remove, how, and at what cost.

The public API (`tfprune.api`), loaded on first use so that `import tfprune`
stays light for scripts that set TensorFlow's logging first:

    graph = tfprune.from_keras(model_or_path)    # tf_keras or Keras 3, verified
    pruned = tfprune.prune(graph, 'unit', 50)   # or an Importance object
    pruned = tfprune.prune(graph, tfprune.OBS(), 90, calibration=x_train[:2048])
    tfprune.evaluate(pruned, x, y)
    small = tfprune.compact(pruned)              # removed channels gone
    tfprune.save(small, 'p.npz'); tfprune.to_keras(small)  # plain Keras

The command line is `tfprune <command>` (`tfprune.commands`: sweep,
evaluate, gradual, structured, sensitivity, benchmark, train, plot,
holdout); a clone's `experiments/` holds the same tools as scripts and the
study reproductions.
"""

__version__ = '0.1.0'

_API = ('Graph', 'from_keras', 'to_keras', 'load', 'save', 'prune', 'compact',
        'evaluate', 'predict', 'criterion_names', 'allocations', 'allocate', 'register',
        'Importance', 'WeightImportance', 'ChannelImportance',
        'DataAwareImportance', 'Wanda', 'OBS', 'Pattern')
__all__ = list(_API)


def __getattr__(name):
  if name in _API:
    from tfprune import api  # pylint: disable=import-outside-toplevel
    return getattr(api, name)
  raise AttributeError(f'module tfprune has no attribute {name!r}')
