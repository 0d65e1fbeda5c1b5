"""Keras models and their conversion to and from the network graph (`models`, `model_graph`)."""
