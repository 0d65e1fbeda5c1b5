"""tfprune: neural-network pruning experiments with Keras (tf_keras) and TensorFlow.

The README lists every module by concept; the entry points are the scripts in
`experiments/`, each a thin absl `main` over one library function:
`training.train`, `sweep.run`, `benchmark.run`, `gradual_study.run`,
`study_fashion`, `study_lenet`, `study_resnet` and `trials` (lottery tickets).
"""

__version__ = '0.1.0'
