"""How much of each layer to prune: allocations of an overall level over layers.

An allocation turns one overall level k (percent of all the pruned layers'
weights together) into one level per layer; a criterion (`tfprune.criteria`)
then chooses which weights or units each layer loses. See `allocators`.
"""
