"""Which architectures tfprune reads exactly and prunes end to end, per framework.

Builds 27 architectures with random weights at small input sizes (the
`keras.applications` image classifiers, weights=None, and small models of
the kinds people train today) in Keras 3 and tf_keras, and for each:
imports it (outputs equal to Keras's on two batches, relative to their
scale), prunes weights at 50% and units at 30%, compacts, writes it back
with `to_keras`, and checks the compacted graph and the Keras model predict
what the pruned graph predicts. Each row is `exact` (all of it), `refused`
(one line from tfprune, kept in the CSV) or `error` (anything else: a bug).

  python experiments/architectures.py --out=/tmp/architectures.csv
  python experiments/architectures.py --only=unet_transpose,lstm --frameworks=keras3
"""

from tfprune import cli  # first: sets TensorFlow's log level  # pylint: disable=g-import-not-at-top

import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-order
import sys  # pylint: disable=g-import-not-at-top,wrong-import-order

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tfprune import api  # pylint: disable=g-import-not-at-top
from tfprune import atomic  # pylint: disable=g-import-not-at-top
from tfprune import keras_compat  # pylint: disable=g-import-not-at-top
from tfprune.errors import TfpruneError  # pylint: disable=g-import-not-at-top
from tfprune.graph import evaluator  # pylint: disable=g-import-not-at-top

# Outputs must agree to float32 round-off, relative to the largest output.
RTOL = 1e-5

# keras.applications name -> the smallest input it builds at.
APPLICATIONS = {
    'ResNet50': 32, 'ResNet50V2': 32, 'MobileNetV2': 32, 'EfficientNetB0': 32,
    'DenseNet121': 32, 'VGG16': 32, 'Xception': 71, 'InceptionV3': 75,
    'MobileNetV3Small': 32, 'ConvNeXtTiny': 32, 'NASNetMobile': 32}


def _application(name: str):
  def make(K):
    size = APPLICATIONS[name]
    return getattr(K.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=10)
  return make


def separable_cnn(K):
  i = K.Input((16, 16, 3))
  x = K.layers.SeparableConv2D(8, 3, activation='relu')(i)
  x = K.layers.BatchNormalization()(x)
  x = K.layers.SeparableConv2D(12, 3, padding='same', activation='relu')(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(4, activation='softmax')(x))


def sequential_mlp(K):
  return K.Sequential([K.Input((20,)), K.layers.Dense(32, activation='relu'),
                       K.layers.Dropout(0.1), K.layers.Dense(16, activation='relu'),
                       K.layers.Dense(5, activation='softmax')])


def small_cnn(K):
  return K.Sequential([K.Input((12, 12, 1)), K.layers.Conv2D(8, 3, activation='relu'),
                       K.layers.MaxPooling2D(), K.layers.Conv2D(8, 3, activation='relu'),
                       K.layers.Flatten(), K.layers.Dense(4, activation='softmax')])


def _encoder(K, x, heads=2, width=16):
  y = K.layers.MultiHeadAttention(heads, width // heads)(x, x)
  x = K.layers.LayerNormalization()(K.layers.Add()([x, y]))
  y = K.layers.Dense(2 * width, activation='gelu')(x)
  y = K.layers.Dense(width)(y)
  return K.layers.LayerNormalization()(K.layers.Add()([x, y]))


def transformer_block(K):
  i = K.Input((8, 16))
  x = K.layers.GlobalAveragePooling1D()(_encoder(K, i))
  return K.Model(i, K.layers.Dense(3)(x))


def vit(K):
  i = K.Input((16, 16, 1))
  x = K.layers.Conv2D(16, 4, strides=4)(i)  # 4x4 patches
  x = K.layers.Reshape((16, 16))(x)
  x = _encoder(K, _encoder(K, x))
  x = K.layers.GlobalAveragePooling1D()(x)
  return K.Model(i, K.layers.Dense(10)(x))


def conv1d_sequence(K):
  i = K.Input((24, 4))
  x = K.layers.Conv1D(8, 3, padding='same', activation='relu')(i)
  x = K.layers.MaxPooling1D(2)(x)
  x = K.layers.Conv1D(8, 3, activation='relu')(x)
  x = K.layers.GlobalAveragePooling1D()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def embedding_text(K):
  i = K.Input((12,))
  x = K.layers.Embedding(50, 8)(i)
  x = K.layers.GlobalAveragePooling1D()(x)
  x = K.layers.Dense(8, activation='relu')(x)
  return K.Model(i, K.layers.Dense(2)(x))


def _recurrent(cls: str, bidirectional: bool = False):
  def make(K):
    i = K.Input((10, 4))
    layer = getattr(K.layers, cls)(6)
    x = (K.layers.Bidirectional(layer) if bidirectional else layer)(i)
    return K.Model(i, K.layers.Dense(3)(x))
  return make


def unet_transpose(K):
  i = K.Input((16, 16, 3))
  d1 = K.layers.Conv2D(8, 3, padding='same', activation='relu')(i)
  d2 = K.layers.Conv2D(16, 3, padding='same', activation='relu')(
      K.layers.MaxPooling2D()(d1))
  u = K.layers.Conv2DTranspose(8, 2, strides=2, activation='relu')(d2)
  x = K.layers.Conv2D(8, 3, padding='same', activation='relu')(
      K.layers.Concatenate()([d1, u]))
  return K.Model(i, K.layers.Conv2D(2, 1)(x))


def unet_upsampling(K):
  i = K.Input((16, 16, 3))
  d1 = K.layers.Conv2D(8, 3, padding='same', activation='relu')(i)
  d2 = K.layers.Conv2D(16, 3, padding='same', activation='relu')(
      K.layers.MaxPooling2D()(d1))
  u = K.layers.Conv2D(8, 1, activation='relu')(K.layers.UpSampling2D()(d2))
  x = K.layers.Conv2D(8, 3, padding='same', activation='relu')(
      K.layers.Concatenate()([d1, u]))
  return K.Model(i, K.layers.Conv2D(2, 1)(x))


def _normalized_cnn(norm):
  def make(K):
    i = K.Input((12, 12, 3))
    x = K.layers.Conv2D(8, 3, activation='relu')(i)
    x = norm(K)(x)
    x = K.layers.Conv2D(8, 3, activation='relu')(x)
    x = norm(K)(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return K.Model(i, K.layers.Dense(3)(x))
  return make


def two_inputs(K):
  a, b = K.Input((6,), name='a'), K.Input((4,), name='b')
  x = K.layers.Concatenate()([K.layers.Dense(8, activation='relu')(a),
                              K.layers.Dense(8, activation='relu')(b)])
  return K.Model([a, b], K.layers.Dense(3)(x))


def two_outputs(K):
  i = K.Input((6,))
  x = K.layers.Dense(8, activation='relu')(i)
  return K.Model(i, [K.layers.Dense(3, name='label')(x),
                     K.layers.Dense(1, name='score')(x)])


ARCHITECTURES = {
    **{name.lower(): _application(name) for name in APPLICATIONS},
    'separable_cnn': separable_cnn, 'sequential_mlp': sequential_mlp,
    'small_cnn': small_cnn, 'transformer_block': transformer_block, 'vit': vit,
    'conv1d_sequence': conv1d_sequence, 'embedding_text': embedding_text,
    'lstm': _recurrent('LSTM'), 'gru': _recurrent('GRU'),
    'bidirectional_lstm': _recurrent('LSTM', bidirectional=True),
    'unet_transpose': unet_transpose, 'unet_upsampling': unet_upsampling,
    'group_norm_cnn': _normalized_cnn(lambda K: K.layers.GroupNormalization(4)),
    'layer_norm_cnn': _normalized_cnn(lambda K: K.layers.LayerNormalization()),
    'two_inputs': two_inputs, 'two_outputs': two_outputs,
}

_OUT = flags.DEFINE_string('out', 'architectures.csv', 'CSV file to write.')
_ONLY = flags.DEFINE_list('only', None, 'Architectures to try (default: all '
                          f'{len(ARCHITECTURES)}).')
_FRAMEWORKS = flags.DEFINE_list('frameworks', list(keras_compat.FRAMEWORKS),
                                'Keras frameworks to build them in.')


def _close(ours, theirs) -> bool:
  """Equal up to round-off, output by output (a model may have several)."""
  if isinstance(theirs, (list, tuple)):
    return (isinstance(ours, (list, tuple)) and len(ours) == len(theirs)
            and all(_close(a, b) for a, b in zip(ours, theirs)))
  theirs = np.asarray(theirs)
  scale = float(np.max(np.abs(theirs))) if np.size(theirs) else 0.0
  return bool(np.allclose(ours, theirs, rtol=0, atol=RTOL * max(scale, 1e-6)))


def _inputs(model, seed: int):
  """A batch of 4 random inputs (a list for several inputs): token ids in
  [0, vocabulary) for a model that embeds its input, standard normal values
  otherwise."""
  rng = np.random.default_rng(seed)
  embeddings = [l for l in model.layers if type(l).__name__ == 'Embedding']
  batches = []
  for tensor in model.inputs:
    shape = (4, *tensor.shape[1:])
    if embeddings:
      batches.append(rng.integers(0, embeddings[0].input_dim, shape).astype(np.float32))
    else:
      batches.append(rng.standard_normal(shape).astype(np.float32))
  return batches if len(batches) > 1 else batches[0]


def _keras(model, x):
  """`model(x)` as numpy arrays (a list for several outputs)."""
  y = model(x)
  return [np.asarray(v) for v in y] if isinstance(y, (list, tuple)) else np.asarray(y)


def check(make, framework: str) -> tuple[str, str]:
  """('exact' | 'refused' | 'error' | 'wrong', detail) for one architecture."""
  K = keras_compat.keras_module(framework)
  K.backend.clear_session()  # fresh layer names: the same CSV every run
  K.utils.set_random_seed(0)
  try:
    model = make(K)
    graph = api.from_keras(model)
    for seed in (1, 2):
      x = _inputs(model, seed)
      if not _close(evaluator.predict(graph, x), _keras(model, x)):
        return 'wrong', f'import differs from Keras on batch {seed}'
    for method, k in (('weight', 50), ('unit', 30)):
      pruned = api.prune(graph, method, k)
      compacted = api.compact(pruned)
      exported = api.to_keras(compacted)
      x = _inputs(model, 3)
      expected = evaluator.predict(pruned, x)
      if not (_close(evaluator.predict(compacted, x), expected)
              and _close(_keras(exported, x), expected)):
        return 'wrong', f'{method} {k}: compacted or exported differs'
    return 'exact', f'{graph.num_params} params, {len(graph.nodes)} nodes'
  except TfpruneError as e:
    return 'refused', str(e)
  except Exception as e:  # pylint: disable=broad-except
    return 'error', f'{type(e).__name__}: {" ".join(str(e).split())[:300]}'


def main(argv):
  del argv
  names = _ONLY.value or list(ARCHITECTURES)
  out = pathlib.Path(_OUT.value)
  atomic.check_writable(out.parent, '--out')  # before the long run, not after
  rows = []
  for name in names:
    for framework in _FRAMEWORKS.value:
      status, detail = check(ARCHITECTURES[name], framework)
      rows.append({'architecture': name, 'framework': framework,
                   'status': status, 'detail': detail})
      print(f'{name:20s} {framework:9s} {status:8s} {detail[:150]}', flush=True)
  atomic.ensure_dir(out.parent, '--out')
  atomic.write_csv(out, ['architecture', 'framework', 'status', 'detail'], rows)
  both = sum(all(r['status'] == 'exact' for r in rows if r['architecture'] == n)
             for n in names)
  print(f'{both} of {len(names)} exact and pruned end to end in '
        f'{" and ".join(_FRAMEWORKS.value)}; wrote {_OUT.value}')
  sys.stdout.flush()


if __name__ == '__main__':
  cli.run(main)
