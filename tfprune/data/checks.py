"""The checks every array of data passes once, where it is loaded.

`inputs` and `labels` check one array each (real numbers, finite; integer
class indices that fit int64, none negative) and return it as the tools use
it (float32, int64); `fits` checks a split against the model that will read
it (the example layout, the label range), and `fits_model` does for a model
with any number of inputs and outputs, whose arrays are named by input and
output (`x_test_<input>`, `y_test_<output>`). `finite_params` checks a network's
weights. Each failure is one `TfpruneError` line naming the array and the
index of its first bad value, so `x_test`, `x_train` and the labels of every
tool are held to the same rules.
"""

from typing import Iterable, Mapping, Sequence

import numpy as np

from tfprune.errors import TfpruneError

_INT64_MAX = np.iinfo(np.int64).max


def _first(mask: np.ndarray) -> tuple[int, ...]:
  """The index of the first True in `mask` (C order)."""
  return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _index_text(index: tuple[int, ...]) -> str:
  return f'[{", ".join(map(str, index))}]'


def inputs(x: np.ndarray, name: str, source: str) -> np.ndarray:
  """`x` as float32 if it holds finite real numbers, one example per row.

  Args:
    x: the examples (n, ...).
    name: the array's name for messages, e.g. 'x_test'.
    source: where it came from (a file or dataset name).

  Raises:
    TfpruneError: `x` is not numeric, is complex, has fewer than 2 dimensions,
      or holds NaN/Inf (before or after the cast to float32).
  """
  x = np.asarray(x)
  if np.issubdtype(x.dtype, np.complexfloating):
    raise TfpruneError(f'{source}: {name} has complex dtype {x.dtype}: store '
                       'real inputs (float32)')
  if (not np.issubdtype(x.dtype, np.number)) or x.dtype == np.bool_ or x.ndim < 2:
    raise TfpruneError(f'{source}: {name} has dtype {x.dtype} and shape '
                       f'{x.shape}: store numbers, one example per row')
  with np.errstate(over='ignore'):  # values past float32 become inf: refused
    as_float = x.astype(np.float32, copy=False)
  bad = ~np.isfinite(as_float)
  if bad.any():
    index = _first(bad)
    what = 'too large for float32' if np.isfinite(x[index]) else str(x[index])
    raise TfpruneError(
        f'{source}: {name}{_index_text(index)} is {what} ({int(bad.sum())} '
        f'non-finite values in all): replace them with real values or drop '
        f'example {index[0]}')
  return as_float


def labels(y: np.ndarray, name: str, source: str) -> np.ndarray:
  """`y` as int64 class indices of shape (n,), refusing what would wrap.

  Raises:
    TfpruneError: `y` is not integer, not of shape (n,) or (n, 1), holds a
      negative value or one past int64 (a uint64 of 2**64 - 1 must not turn
      into -1).
  """
  y = np.asarray(y)
  flat = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
  if (flat.ndim != 1 or not np.issubdtype(flat.dtype, np.integer)
      or flat.dtype == np.bool_):
    raise TfpruneError(
        f'{source}: {name} has dtype {y.dtype} and shape {y.shape}: store '
        'integer class indices of shape (n,) (not one-hot)')
  if flat.size:
    if np.issubdtype(flat.dtype, np.unsignedinteger):
      too_big = flat > np.uint64(_INT64_MAX)
      if too_big.any():
        i = int(np.argmax(too_big))
        raise TfpruneError(f'{source}: {name}[{i}] is {flat[i]}, not a class '
                           'index: use labels 0 ... classes - 1')
    else:
      negative = flat < 0
      if negative.any():
        i = int(np.argmax(negative))
        raise TfpruneError(f'{source}: {name}[{i}] is {flat[i]}, negative: use '
                           'class indices 0 ... classes - 1')
  return flat.astype(np.int64)


def fits(x: np.ndarray, y: np.ndarray, input_shape: Sequence[int],
         num_outputs: int, names: tuple[str, str], source: str) -> None:
  """Refuses examples or labels that do not fit the model.

  The same rule for every split (test, calibration, training): the examples'
  shape must be the model's input shape (a transposed layout such as
  channels-first is named as such), and every label below `num_outputs`.

  Args:
    x, y: examples and int64 labels.
    input_shape: the shape of one example the model takes.
    num_outputs: the model's classes.
    names: the arrays' names, e.g. ('x_test', 'y_test').
    source: where the data came from.

  Raises:
    TfpruneError: the layout or a label does not fit.
  """
  _layout(x, input_shape, names[0], source)
  if len(x) != len(y):
    raise TfpruneError(f'{source}: {len(x)} examples in {names[0]} but '
                       f'{len(y)} labels in {names[1]}: store one label per '
                       'example')
  _label_range(y, num_outputs, names[1], source)


def _layout(x: np.ndarray, input_shape: Sequence[int], name: str,
            source: str) -> None:
  shape, want = tuple(x.shape[1:]), tuple(int(d) for d in input_shape)
  if shape != want:
    hint = ('a transposed layout (channels-first?)'
            if sorted(shape) == sorted(want) else 'another shape')
    raise TfpruneError(
        f'{source}: {name} holds examples of shape {shape} but the model '
        f'takes {want} ({hint}): store the inputs as the model reads them')


def _label_range(y: np.ndarray, num_outputs: int, name: str,
                 source: str) -> None:
  if y.size:
    over = y >= num_outputs
    if over.any():
      i = int(np.argmax(over))
      raise TfpruneError(
          f'{source}: {name}[{i}] is {y[i]} but the model has {num_outputs} '
          'outputs: use labels 0 ... outputs - 1, or the model trained on this '
          'data')


def _by_name(value, wanted: Sequence[str], key: str, what: str,
             source: str) -> dict[str, tuple[str, np.ndarray]]:
  """name -> (array name, array) for each model input or output `wanted`."""
  if not isinstance(value, Mapping):
    if len(wanted) != 1:
      arrays = ', '.join(f'{key}_{n}' for n in wanted)
      raise TfpruneError(
          f'{source}: {key} is one array but the model has {len(wanted)} '
          f'{what}s ({", ".join(wanted)}): store {arrays}')
    return {wanted[0]: (key, value)}
  missing = [f'{key}_{n}' for n in wanted if n not in value]
  extra = [f'{key}_{n}' for n in sorted(value) if n not in wanted]
  if missing or extra:
    raise TfpruneError(
        f'{source}: its {key} arrays do not match the model\'s {what}s '
        f'({", ".join(wanted)}): missing {", ".join(missing) or "none"}; extra '
        f'{", ".join(extra) or "none"}: store one {key}_<{what} name> per '
        f'model {what}')
  return {n: (f'{key}_{n}', value[n]) for n in wanted}


def fits_model(x, y, input_shapes: Mapping[str, Sequence[int]],
               classes: Mapping[str, int], which: str, source: str) -> None:
  """`fits` for a model with any number of inputs and outputs.

  Args:
    x: one array (a one-input model), or a dict of arrays by input name.
    y: one label array (a one-output model), or a dict by output name.
    input_shapes: the shape of one example, by model input name.
    classes: the number of classes, by model output name.
    which: 'test' or 'train': the arrays are `x_<which>[_<input>]`,
      `y_<which>[_<output>]`.
    source: where the data came from.

  Raises:
    TfpruneError: an array is missing or extra (all named), or a layout or
      a label does not fit.
  """
  names = (f'x_{which}', f'y_{which}')
  if (len(input_shapes) == len(classes) == 1 and not isinstance(x, Mapping)
      and not isinstance(y, Mapping)):
    fits(x, y, next(iter(input_shapes.values())),
         next(iter(classes.values())), names, source)
    return
  xs = _by_name(x, list(input_shapes), names[0], 'input', source)
  ys = _by_name(y, list(classes), names[1], 'output', source)
  for name, (key, array) in xs.items():
    _layout(array, input_shapes[name], key, source)
  for name, (key, array) in ys.items():
    _label_range(array, classes[name], key, source)


_DIVERGED = ('the model diverged in training; retrain it (e.g. with a lower '
             'learning rate)')


def finite_params(params: Iterable[tuple[str, np.ndarray]], source: str,
                  fix: str = _DIVERGED) -> None:
  """Refuses a network with a NaN or Inf weight, naming the first one.

  Args:
    params: (name, array) pairs, e.g. ('dense_1/kernel', kernel).
    source: the model file or folder.
    fix: what the user can do, for the message.

  Raises:
    TfpruneError: some weight is not finite.
  """
  for name, array in params:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
      continue
    bad = ~np.isfinite(array)
    if bad.any():
      index = _first(bad)
      raise TfpruneError(
          f'{source}: weight {name}{_index_text(index)} is {array[index]} '
          f'({int(bad.sum())} non-finite values in all): {fix}')
