"""Datasets: the registry and IDX/tfds loading (`datasets`), Palmer penguins (`penguins`)."""
