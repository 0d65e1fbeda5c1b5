"""Checks of `tfprune.keras` that run on any Keras 3 backend.

`tests/test_keras3_pruning.py` runs each in its own process (TensorFlow) and
all of them in one fresh process with KERAS_BACKEND=jax
(`python -m tests.keras3_checks DIR`): Keras's backend is fixed at import.
Each check asserts exact counts and returns nothing.
"""

import json
import pathlib
import re
import sys

import keras
import numpy as np

from tfprune import keras as tfk
from tfprune.criteria import pruning

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / 'docs' / 'keras3-pruning.md'


def cnn(seed: int = 0) -> keras.Model:
  """Conv + BN, DepthwiseConv + BN, a residual add tying two convs, a classifier."""
  keras.utils.set_random_seed(seed)
  L = keras.layers
  inp = keras.Input((12, 12, 1))
  x = L.ReLU()(L.BatchNormalization(name='bn1')(
      L.Conv2D(8, 3, padding='same', name='conv1')(inp)))
  x = L.ReLU()(L.BatchNormalization(name='bn2')(
      L.DepthwiseConv2D(3, padding='same', name='dw')(x)))
  a = L.Conv2D(12, 1, name='pw')(x)
  b = L.Conv2D(12, 3, padding='same', name='conv3')(L.ReLU()(a))
  x = L.ReLU()(L.Add(name='add')([a, b]))
  out = L.Dense(10, name='out')(L.GlobalAveragePooling2D()(x))
  return keras.Model(inp, out)


def data(n: int = 64, seed: int = 0):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((n, 12, 12, 1)).astype(np.float32),
          rng.integers(0, 10, n))


def compiled(model: keras.Model) -> keras.Model:
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def numpy(variable) -> np.ndarray:
  return keras.ops.convert_to_numpy(variable)


def check_weight_fit(tmp: pathlib.Path) -> None:
  """Gradual magnitude pruning to 80% in fit: exact zeros in every kernel, depthwise too; a plain model after."""
  model = compiled(cnn())
  x, y = data()
  schedule = tfk.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=6, frequency=2)
  callback = tfk.Pruning(schedule)
  model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
  assert callback.pruner.step_count == 12
  names = [t.name for t in callback.pruner.targets]
  assert names == ['conv1/kernel', 'dw/kernel', 'pw/kernel', 'conv3/kernel'], names
  tfk.strip_pruning(model)
  assert not hasattr(model, '_tfprune_pruning')
  zeros = tfk.kernel_sparsity(model)
  for name in names:
    z, size = zeros[name]
    assert z == pruning.prune_count(80, size), (name, z, size)
  assert zeros['out/kernel'][0] == 0  # the output layer is kept
  model.save(tmp / 'weight.keras')
  loaded = keras.models.load_model(tmp / 'weight.keras')
  np.testing.assert_array_equal(numpy(loaded(x)), numpy(model(x)))


class _ZerosAfterStep(keras.callbacks.Callback):
  """Listed before `Pruning`: right after each optimizer step, every masked trainable entry is 0."""

  def __init__(self, pruning):
    super().__init__()
    self.pruning, self.steps = pruning, 0

  def on_train_batch_end(self, batch, logs=None):
    pruner = self.pruning.pruner
    if getattr(self.model, '_jax_state', None) is not None:
      self.model.jax_state_sync()
    trainable = {id(v) for v in self.model.trainable_variables}
    for target, mask in zip(pruner.targets, pruner.state.masks):
      if id(target.variable) in trainable:
        value, kept = numpy(target.variable), numpy(mask) != 0
        assert np.all(value[~kept] == 0), (target.name, self.steps)
    self.steps += 1


def check_zeros_after_every_step(tmp: pathlib.Path) -> None:
  """The optimizer's own step leaves every masked weight zero, before `Pruning`'s batch end runs."""
  del tmp
  for criterion in ('weight', 'unit'):
    model = compiled(cnn())
    x, y = data()
    # Masks change every 2 steps: each change must reach the compiled step.
    pruning = tfk.Pruning(tfk.PolynomialDecay(0.0, 0.8, begin_step=0,
                                              end_step=8, frequency=2),
                          criterion)
    check = _ZerosAfterStep(pruning)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0,
              callbacks=[check, pruning])
    assert check.steps == 12
    assert sum(z for z, _ in pruning.pruner.sparsity().values()) > 0


def check_first_update_keeps_largest(tmp: pathlib.Path) -> None:
  """One update at step 1: every kept |w| >= every pruned |w| of the same kernel."""
  del tmp
  model = cnn()
  before = {t.name: numpy(t.variable) for t in tfk.Pruner(
      cnn(), tfk.ConstantSparsity(0.5, 1, 1, 1)).targets}
  pruner = tfk.Pruner(model, tfk.ConstantSparsity(0.5, begin_step=1,
                                                  end_step=1, frequency=1))
  for target in pruner.targets:
    w, kept = before[target.name], numpy(target.variable) != 0
    assert np.sum(~kept) == pruning.prune_count(50, w.size)
    assert np.abs(w[kept]).min() >= np.abs(w[~kept]).max(), target.name


def check_unit_fit_compact(tmp: pathlib.Path) -> None:
  """Gradual unit pruning to 50% of every channel group, then the smaller model."""
  model = compiled(cnn())
  x, y = data()
  schedule = tfk.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6, frequency=2)
  model.fit(x, y, batch_size=16, epochs=3, verbose=0,
            callbacks=[tfk.Pruning(schedule, criterion='unit')])
  masked = numpy(model(x, training=False))
  small = tfk.compact(model)
  shapes = {l.name: [tuple(w.shape) for w in l.weights] for l in small.layers
            if l.weights}
  # conv1's 8 channels (dw follows them) and the 12 channels pw and conv3
  # share through the add lose half each.
  assert shapes['conv1'][0] == (3, 3, 1, 4), shapes
  assert shapes['dw'][0] == (3, 3, 4, 1), shapes
  assert shapes['pw'][0] == (1, 1, 4, 6) and shapes['conv3'][0] == (3, 3, 6, 6)
  assert shapes['out'][0] == (6, 10), shapes
  got = numpy(small(x, training=False))
  # float32 sums in another order: relative to the outputs' scale.
  np.testing.assert_allclose(got, masked, rtol=1e-4,
                             atol=1e-4 * np.abs(masked).max())
  small.save(tmp / 'small.keras')
  loaded = keras.models.load_model(tmp / 'small.keras')
  np.testing.assert_array_equal(numpy(loaded(x)), numpy(small(x)))


def check_allocations_and_patterns(tmp: pathlib.Path) -> None:
  """global/erk prune exactly floor(k·N/100) over all kernels; 2:4 keeps 2 of every 4."""
  del tmp
  for allocation in ('global', 'erk'):
    pruner = tfk.Pruner(cnn(), tfk.ConstantSparsity(0.7, 1, 1, 1),
                        allocation=allocation)
    counts = pruner.sparsity().values()
    assert sum(z for z, _ in counts) == pruning.prune_count(
        70, sum(s for _, s in counts)), allocation
  pruner = tfk.Pruner(cnn(), tfk.ConstantSparsity(0.5, 1, 1, 1), pattern='2:4',
                      layers=['pw', 'conv3'])
  for target in pruner.targets:
    w = numpy(target.variable)
    groups = (w.reshape(-1, w.shape[-1]) != 0).reshape(-1, 4, w.shape[-1])
    assert np.all(groups.sum(axis=1) == 2), target.name


def check_attention(tmp: pathlib.Path) -> None:
  """A MultiHeadAttention's query, key, value and output kernels are pruned."""
  del tmp
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 16))
  h = keras.layers.MultiHeadAttention(2, 8, name='mha')(inp, inp)
  out = keras.layers.Dense(3, name='out')(keras.layers.GlobalAveragePooling1D()(h))
  pruner = tfk.Pruner(keras.Model(inp, out), tfk.ConstantSparsity(0.75, 1, 1, 1))
  found = {t.name: pruner.sparsity()[t.name] for t in pruner.targets}
  assert sorted(found) == sorted(f'mha/{p}/kernel' for p in
                                 ('query', 'key', 'value', 'attention_output')), found
  for name, (zeros, size) in found.items():
    assert zeros == pruning.prune_count(75, size), name


def doc_example(name: str) -> str:
  """The code block of docs/keras3-pruning.md after `<!-- example: name -->`."""
  match = re.search(rf'<!-- example: {name} -->\s*```python\n(.*?)```',
                    DOC.read_text(), re.S)
  assert match, f'no example {name} in {DOC}'
  return match.group(1)


def check_doc_loop(tmp: pathlib.Path) -> None:
  """The page's custom-loop example of this backend runs, and prunes exactly."""
  del tmp
  name = {'tensorflow': 'tf-loop', 'jax': 'jax-loop'}[keras.backend.backend()]
  scope = {}
  exec(compile(doc_example(name), f'{DOC.name}:{name}', 'exec'), scope)  # pylint: disable=exec-used
  model = scope['model']
  for path, (zeros, size) in tfk.kernel_sparsity(model).items():
    want = 0 if path.startswith('output') else pruning.prune_count(90, size)
    assert zeros == want, (path, zeros, size)


CHECKS = {f.__name__: f for f in (
    check_weight_fit, check_zeros_after_every_step,
    check_first_update_keeps_largest, check_unit_fit_compact,
    check_allocations_and_patterns, check_attention, check_doc_loop)}


if __name__ == '__main__':
  folder = pathlib.Path(sys.argv[1])
  done = []
  for check_name, check in CHECKS.items():
    (folder / check_name).mkdir(parents=True, exist_ok=True)
    check(folder / check_name)
    done.append(check_name)
  print(json.dumps({'backend': keras.backend.backend(), 'passed': done}))
