"""Transforms of a pruned network: compaction of dense chains and of conv/unit structure."""
