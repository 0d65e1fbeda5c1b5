"""TFLite export of a (stripped) Keras model, with TF-MOT's sparse encoding.

`tf.lite.Optimize.EXPERIMENTAL_SPARSITY` lets the converter store pruned
weight tensors in a sparse format, so the `.tflite` file shrinks with the
sparsity; `predict` runs the file with the TFLite interpreter to check that
it still computes what the Keras model does.
"""

import pathlib
import warnings

import numpy as np
import tensorflow as tf

from tfprune import atomic
from tfprune.keras_compat import keras


def convert(model: keras.Model, sparse: bool = True) -> bytes:
  """The model as a TFLite flatbuffer (float32 weights).

  Args:
    model: a Keras model without pruning wrappers.
    sparse: encode sparse weight tensors (`EXPERIMENTAL_SPARSITY`).
  """
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  if sparse:
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
  return converter.convert()


def save(model: keras.Model, path: str | pathlib.Path, sparse: bool = True) -> int:
  """Writes `convert(model, sparse)` to `path` atomically; returns its size."""
  flatbuffer = convert(model, sparse)
  with atomic.replacing(path) as tmp:
    tmp.write_bytes(flatbuffer)
  return len(flatbuffer)


def predict(flatbuffer: bytes, inputs: np.ndarray, batch: int = 1000) -> np.ndarray:
  """Outputs of the TFLite model for `inputs`, `batch` examples at a time."""
  with warnings.catch_warnings():
    # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works
    # in TF 2.21, and tfprune pins TF.
    warnings.simplefilter('ignore', UserWarning)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
  (input_detail,) = interpreter.get_input_details()
  (output_detail,) = interpreter.get_output_details()
  outputs = []
  for start in range(0, len(inputs), batch):
    chunk = np.asarray(inputs[start:start + batch], dtype=np.float32)
    interpreter.resize_tensor_input(input_detail['index'], chunk.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail['index'], chunk)
    interpreter.invoke()
    outputs.append(interpreter.get_tensor(output_detail['index']).copy())
  return np.concatenate(outputs)
