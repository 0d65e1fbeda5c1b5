"""Keras models <-> graphs: import (trace), verification against Keras, and building back."""
