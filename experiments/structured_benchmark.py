"""Dense vs channel-pruned (compacted) Keras model: parameters, MACs, file size, latency.

Builds ResNet-18 (width 0.25) and MobileNetV2 (alpha 0.35) at 32x32x3 with
random weights, removes k% of every dependency group's channels with `unit`
(`transforms.graph_compaction`) and times the dense and the compacted tf_keras
models in alternating blocks in one process
(`benchmark.paired_model_times`, median of each). Example:

  python experiments/structured_benchmark.py --k=50 --runs=200
"""

from tfprune import commands  # the flags and main of `tfprune structured`

if __name__ == '__main__':
  commands.run_script('structured', __doc__)
