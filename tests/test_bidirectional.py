"""Bidirectional around LSTM and GRU: one op definition (`bidirectional`)
reusing the LSTM/GRU computations for its forward and backward layers.

Every merge mode Keras has with one output (concat, sum, mul, ave), with and
without `return_sequences`, in tf_keras and Keras 3: imported equal to Keras
on two batches; weight pruning at 50% masks both directions' kernels and the
compacted, exported model predicts what the pruned graph predicts; unit
pruning keeps the layer's units (their gates go together), named in one
line; `merge_mode=None` (two outputs) is refused in one line.
"""

import numpy as np
import pytest

from tests import keras_zoo
from tfprune import api
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.keras_io import importer

# Float32 round-off, relative to the largest output.
RTOL = 1e-5
STEPS, FEATURES = 7, 3


def _model(K, cell: str, merge_mode: str, return_sequences: bool):
  i = K.Input((STEPS, FEATURES))
  x = K.layers.Bidirectional(getattr(K.layers, cell)(
      4, return_sequences=return_sequences), merge_mode=merge_mode)(i)
  if return_sequences:
    x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(2)(x))


def _batch(seed):
  return np.random.default_rng(seed).standard_normal(
      (5, STEPS, FEATURES)).astype(np.float32)


def _close(ours, theirs):
  scale = float(np.max(np.abs(theirs)))
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=RTOL * max(scale, 1e-6))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('return_sequences', [True, False])
@pytest.mark.parametrize('merge_mode', ['concat', 'sum', 'mul', 'ave'])
@pytest.mark.parametrize('cell', ['LSTM', 'GRU'])
def test_imported_weight_pruned_and_exported_exactly(cell, merge_mode,
                                                     return_sequences, framework):
  K = keras_zoo.keras_module(framework)
  model = _model(K, cell, merge_mode, return_sequences)
  graph = importer.from_keras(model)
  node = next(n for n in graph.nodes if n.op == 'bidirectional')
  assert node.attrs['cell'] == cell.lower()
  for seed in (1, 2):
    x = _batch(seed)
    _close(evaluator.predict(graph, x), np.asarray(model(x, training=False)))

  # The input kernel holds both directions (forward columns first): 50% of
  # it are zero, the smallest in magnitude.
  gates = {'LSTM': 4, 'GRU': 3}[cell]
  assert node.params['kernel'].shape == (FEATURES, 2 * gates * 4)
  pruned = api.prune(graph, 'weight', 50)
  kernel = pruned.node(node.name).params['kernel']
  zeros = kernel == 0
  assert zeros.sum() == kernel.size // 2
  original = np.abs(node.params['kernel'])
  assert original[~zeros].min() >= original[zeros].max()
  exported = api.to_keras(api.compact(pruned))
  x = _batch(3)
  _close(np.asarray(exported(x, training=False)), evaluator.predict(pruned, x))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_unit_pruning_keeps_its_units_named_in_one_line(framework):
  K = keras_zoo.keras_module(framework)
  graph = importer.from_keras(_model(K, 'GRU', 'concat', False))
  bidirectional = next(n.name for n in graph.nodes if n.op == 'bidirectional')
  with pytest.raises(TfpruneError, match=f'no channel group holds '
                     f'{bidirectional}') as info:
    api.prune(graph, 'unit', 30, [bidirectional])
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_merge_mode_none_refused_in_one_line(framework):
  K = keras_zoo.keras_module(framework)
  i = K.Input((STEPS, FEATURES))
  forward, backward = K.layers.Bidirectional(K.layers.LSTM(3),
                                             merge_mode=None)(i)
  model = K.Model(i, K.layers.Dense(2)(K.layers.Concatenate()(
      [forward, backward])))
  with pytest.raises(TfpruneError, match=r"merge_mode None is not supported: "
                     r"use one of concat, sum, mul, ave") as info:
    importer.from_keras(model)
  assert '\n' not in str(info.value)


def test_training_cannot_reach_its_kernel_refused_in_one_line():
  """Its input kernel holds both directions, no Keras variable of its own:
  pruning while training (which masks Keras variables) refuses it."""
  K = keras_zoo.keras_module('keras3')
  graph = importer.from_keras(_model(K, 'LSTM', 'sum', False))
  node = next(n for n in graph.nodes if n.op == 'bidirectional')
  with pytest.raises(TfpruneError, match=r'layer bidirectional\w* '
                     r'\(bidirectional\) holds its weights in other arrays '
                     r'than its Keras variables: prune it one-shot') as info:
    build.variables(api.to_keras(graph), node)
  assert '\n' not in str(info.value)
