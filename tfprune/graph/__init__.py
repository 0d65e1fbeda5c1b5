"""The network graph: arrays and layer specs (`network`, `layers`) and the `.npy` weight folders (`weights`)."""
