"""`attention`: Keras's MultiHeadAttention, read as Dense projections around
the multi-head scaled dot-product `attention` op.

A `MultiHeadAttention` layer called `mha` is imported as five nodes:

    mha_query, mha_key, mha_value   `dense`: the projections, kernels
                                    (d, heads * key_dim) (heads * value_dim)
    mha_core                        `attention`: softmax(q k^T / sqrt(key_dim)) v
                                    per head, reading (query, key, value[, mask])
    mha                             `dense`: the output projection,
                                    kernel (heads * value_dim, out)

so every weight method (magnitude, Wanda, OBS, ...) prunes the attention
kernels as the Dense kernels they are, and unit pruning removes whole heads:
the channel rule of `attention` ties the query, key and value columns of each
head (and the output projection's rows, which read them) into one coupled
channel, so a head is removed as a whole (its masked columns and biases are
zeroed: a removed head outputs exactly 0). The number of heads follows from
the widths (`heads = width / key_dim`), so a compacted graph has fewer.

`to_keras` writes the five nodes back as one `MultiHeadAttention`
(`keras_layers`, used by `keras_io.build`): the same layer, fewer heads after
compaction. Self- and cross-attention, `key` apart from `value`,
`use_bias=False`, `attention_mask` and `use_causal_mask` are read; masks
are applied as the framework does (Keras 3 replaces masked scores by a large
negative number, tf_keras adds -1e9 times (1 - mask)). Refused in one line:
`use_gate`, `sliding_window`, attention over other axes than the sequence,
inputs that are not (batch, steps, features), explicit query/value/key masks
and `return_attention_scores`.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import activations
from tfprune.graph.ops import base

PROJECTIONS = ('query', 'key', 'value')
# Keras 3 (TensorFlow backend) puts this at masked scores; tf_keras adds
# -1e9 * (1 - mask).
_KERAS3_MASKED = -0.7 * 3.38953e38
_TF_KERAS_MASKED = -1e9
# Call arguments of MultiHeadAttention in positional order, per framework.
_CALL_ARGS = {
    'keras3': ('query', 'value', 'key', 'query_mask', 'value_mask', 'key_mask',
               'attention_mask', 'return_attention_scores', 'training',
               'use_causal_mask'),
    'tf_keras': ('query', 'value', 'key', 'attention_mask',
                 'return_attention_scores', 'training', 'use_causal_mask'),
}


def _shape(attrs, params, inputs):
  del params
  if len(inputs) not in (3, 4) or any(len(s) != 2 for s in inputs):
    raise TfpruneError(f'attention reads (query, key, value[, mask]) of shape '
                       f'(steps, width), got {list(inputs)}')
  (t, q), (s, k), (s_v, v) = inputs[:3]
  key_dim, value_dim = attrs['key_dim'], attrs['value_dim']
  heads = q // key_dim
  if (q % key_dim or k != q or s_v != s or v != heads * value_dim
      or heads < 1):
    raise TfpruneError(
        f'query {inputs[0]}, key {inputs[1]}, value {inputs[2]} are not '
        f'whole heads of key_dim {key_dim} and value_dim {value_dim}')
  if len(inputs) == 4 and tuple(inputs[3]) != (t, s):
    raise TfpruneError(f'attention mask {inputs[3]} is not ({t}, {s})')
  return (t, heads * value_dim)


def _compute(node, p, xs, shape):
  """Multi-head attention of projected query, key and value, as Keras."""
  del p, shape
  a = node.attrs
  q, k, v = xs[:3]
  key_dim, value_dim = a['key_dim'], a['value_dim']
  heads = q.shape[-1] // key_dim

  def split(x, size):
    return tf.reshape(x, (-1, x.shape[1], heads, size))
  q, k, v = split(q, key_dim), split(k, key_dim), split(v, value_dim)
  scale = 1.0 / math.sqrt(float(key_dim))
  if a['scale_query']:  # tf_keras scales the query, Keras 3 the scores
    logits = tf.einsum('BTNH,BSNH->BNTS', q * scale, k)
  else:
    logits = tf.einsum('BTNH,BSNH->BNTS', q, k) * scale
  keep = _keep(a, xs[3] if len(xs) > 3 else None, logits)
  if keep is not None:
    if a['scale_query']:
      logits += (1.0 - tf.cast(keep, logits.dtype)) * _TF_KERAS_MASKED
    else:
      logits = tf.where(tf.cast(keep, tf.bool), logits,
                        tf.constant(_KERAS3_MASKED, logits.dtype))
  out = tf.einsum('BNTS,BSNH->BTNH', tf.nn.softmax(logits, axis=-1), v)
  return tf.reshape(out, (-1, out.shape[1], heads * value_dim))


def _keep(attrs, mask, logits):
  """Which scores count, (B or 1, 1, T, S), or None: all."""
  causal = None
  if attrs['causal']:
    t, s = logits.shape[2], logits.shape[3]
    causal = tf.linalg.band_part(tf.ones((t, s), tf.bool), -1, 0)[None, None]
  if mask is None:
    return causal
  mask = mask[:, None]
  if causal is None:
    # tf_keras adds (1 - mask) * -1e9 for the mask as given.
    return mask if attrs['scale_query'] else tf.cast(mask, tf.bool)
  return tf.logical_and(tf.cast(mask, tf.bool), causal)


def _channels(walk, call: base.ChannelCall) -> np.ndarray:
  """Ties each head's query, key and value channels into one: whole heads."""
  a, name = call.node.attrs, call.node.name
  q, k, v = call.ins[:3]
  heads = q.size // a['key_dim']
  for h in range(heads):
    head = np.concatenate([x[h * d:(h + 1) * d] for x, d in (
        (q, a['key_dim']), (k, a['key_dim']), (v, a['value_dim']))])
    if (head < 0).any():
      walk.block(head, f'{name} (attention) reads a head not made by a '
                 'projection')
    live = head[head >= 0]
    for label in live[1:]:
      walk.union(int(live[0]), int(label))
  # A removed head is silenced (biases zeroed too): it then outputs exactly 0.
  for x in (q, k, v):
    walk.pads(x)
  if len(call.ins) > 3:
    walk.block(call.ins[3], f'{name} (attention) reads them as a mask')
  return v


def _constants(call: base.ConstantCall) -> np.ndarray:
  """An output entry is constant when its value entry is (weights sum to 1)."""
  return call.known[2]


# Reading a MultiHeadAttention layer.

def _bound(l: base.LayerCall) -> dict:
  """The call's arguments by name (tensors as graph node names)."""
  names = _CALL_ARGS[l.framework]
  bound = dict(zip(names, l.args))
  bound.update(l.kwargs)
  if 'query' not in bound or 'value' not in bound:
    raise l.refuse('its call arguments could not be read: call it as '
                   'layer(query, value[, key], attention_mask=...)')
  return {k: l.inputs[v.index] if isinstance(v, base.TensorArg) else v
          for k, v in bound.items()}


def _check_config(l: base.LayerCall) -> None:
  base.check_plain(l)
  c = l.config
  if c.get('use_gate'):
    raise l.refuse('use_gate=True is not supported')
  if c.get('sliding_window') is not None:
    raise l.refuse('sliding_window is not supported')
  axes = c.get('attention_axes')
  if axes is not None and tuple(axes) not in ((1,), (-2,)):
    raise l.refuse(f'attention_axes {axes} is not supported: attend over '
                   'the sequence axis of (batch, steps, features) inputs')
  if any(len(s) != 2 for s in l.input_shapes):
    raise l.refuse(f'inputs of shapes {l.input_shapes} are not supported: '
                   'pass (batch, steps, features) tensors')


def _read(l: base.LayerCall) -> list:
  _check_config(l)
  call = _bound(l)
  for unsupported in ('query_mask', 'value_mask', 'key_mask'):
    if call.get(unsupported) is not None:
      raise l.refuse(f'an explicit {unsupported} is not supported: pass an '
                     'attention_mask')
  if call.get('return_attention_scores'):
    raise l.refuse('return_attention_scores=True is not supported')
  if call.get('training') is True:
    raise l.refuse('it is called with training=True: call it without')
  sources = {'query': call['query'], 'value': call['value'],
             'key': call.get('key') or call['value']}
  layer, name = l.layer, l.name
  nodes = []
  for projection in PROJECTIONS:
    dense = getattr(layer, f'_{projection}_dense')
    kernel = np.asarray(dense.kernel, np.float32)
    params = {'kernel': kernel.reshape(kernel.shape[0], -1)}
    if l.config['use_bias']:
      params['bias'] = np.asarray(dense.bias, np.float32).reshape(-1)
    nodes.append(ir.Node(f'{name}_{projection}', 'dense', [sources[projection]],
                         {'activation': activations.LINEAR}, params))
  mask = call.get('attention_mask')
  core = ir.Node(
      f'{name}_core', 'attention',
      [n.name for n in nodes] + ([mask] if mask is not None else []),
      {'key_dim': int(l.config['key_dim']),
       'value_dim': int(l.config['value_dim'] or l.config['key_dim']),
       'causal': bool(call.get('use_causal_mask', False)),
       'scale_query': l.framework == 'tf_keras'})
  dense = layer._output_dense  # pylint: disable=protected-access
  kernel = np.asarray(dense.kernel, np.float32)
  params = {'kernel': kernel.reshape(-1, kernel.shape[-1])}
  if l.config['use_bias']:
    params['bias'] = np.asarray(dense.bias, np.float32)
  output = ir.Node(name, 'dense', [core.name],
                   {'activation': activations.LINEAR}, params)
  return [*nodes, core, output]


# Written back by `keras_fusions` (with its projections), not on its own.
ATTENTION = base.register(base.OpDef(
    'attention', _shape, _compute, None, arity=None,
    keras={'MultiHeadAttention': _read}, channels=_channels,
    constants=_constants))


# Writing it back: the five nodes as one MultiHeadAttention.

@dataclasses.dataclass(frozen=True)
class Fusion:
  """The nodes of one imported MultiHeadAttention, written as one layer.

  Attributes:
    core: the `attention` node.
    projections: its query, key and value `dense` nodes.
    output: the output projection node (the layer's name).
  """
  core: "ir.Node"
  projections: "tuple[ir.Node, ...]"
  output: "ir.Node"

  @property
  def absorbed(self) -> tuple[str, ...]:
    """Nodes written by the layer at `output`, not on their own."""
    return (*(n.name for n in self.projections), self.core.name)

  def inputs(self) -> list[str]:
    """Graph names of (query, value, key[, mask]), as the layer is called."""
    query, key, value = (n.inputs[0] for n in self.projections)
    return [query, value, key, *self.core.inputs[3:]]

  def layer(self, K, tensors: list):
    """The MultiHeadAttention called on `tensors` (of `inputs`), its output."""
    a = self.core.attrs
    query, key, value = self.projections
    params = [n.params for n in (*self.projections, self.output)]
    use_bias = any('bias' in p for p in params)
    heads = query.params['kernel'].shape[1] // a['key_dim']
    out_dim = self.output.params['kernel'].shape[1]
    mha = K.layers.MultiHeadAttention(
        heads, a['key_dim'], value_dim=a['value_dim'], use_bias=use_bias,
        output_shape=out_dim, name=self.output.name)
    kwargs = {'key': tensors[2]} if key.inputs[0] != value.inputs[0] else {}
    if len(tensors) > 3:
      kwargs['attention_mask'] = tensors[3]
    if a['causal']:
      kwargs['use_causal_mask'] = True
    y = mha(tensors[0], tensors[1], **kwargs)
    weights = []
    for node, p in zip((*self.projections, self.output), params):
      size = a['value_dim'] if node is value else a['key_dim']
      kernel = p['kernel']
      if node is not self.output:
        kernel = kernel.reshape(kernel.shape[0], heads, size)
        bias_shape = (heads, size)
      else:
        kernel = kernel.reshape(heads, a['value_dim'], out_dim)
        bias_shape = (out_dim,)
      weights.append(kernel)
      if use_bias:
        weights.append(np.asarray(p.get('bias', np.zeros(bias_shape)))
                       .reshape(bias_shape))
    mha.set_weights(weights)
    return y


def keras_fusions(graph) -> dict[str, Fusion]:
  """Output node name -> its `Fusion`, for every `attention` node of `graph`.

  Raises:
    TfpruneError: an `attention` node is not read by linear projections
      and one linear output projection, so no MultiHeadAttention computes it.
  """
  fusions = {}
  for core in graph.nodes:
    if core.op != 'attention':
      continue
    projections = tuple(graph.node(s) for s in core.inputs[:3])
    consumers = graph.consumers(core.name)
    nodes = (*projections, *consumers)
    if len(consumers) != 1 or any(
        n.op != 'dense' or n.attrs['activation'] != activations.LINEAR
        for n in nodes) or any(
            len(graph.consumers(n.name)) != 1 for n in projections):
      raise TfpruneError(
          f'node {core.name} (attention) is not between linear query, key, '
          'value and output projections read by nothing else, so no Keras '
          'MultiHeadAttention computes it')
    fusions[consumers[0].name] = Fusion(core, projections, consumers[0])
  return fusions
