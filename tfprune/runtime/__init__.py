"""Running and measuring a network: the evaluator, inference plans, metrics and the sparse export."""
