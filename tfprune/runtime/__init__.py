"""Running and measuring a graph: accuracy through the evaluator, costs, paired timings, CSR gain, executors."""
