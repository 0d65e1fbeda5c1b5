"""Drivers of the command-line experiments: the pruning sweep and its benchmark; nothing in the core imports them."""
