"""Pruning criteria: pure functions from weights (and calibration data) to new masks, and their registries."""
