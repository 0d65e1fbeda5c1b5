"""Benchmark pruned networks against the dense one, measured in the same run.

Any network, a weight folder (the MLP, LeNet-5, the Fashion CNN) or your
Keras model file, is pruned as the sweep prunes it and timed against the
dense one at each --batch_sizes, in alternating blocks: the compacted Keras
model for methods that remove channels (unit), the masked graph through the
graph evaluator otherwise, and the same masked graph with its large Dense
layers on CSR against all dense. Writes graph_benchmark.csv (accuracy,
sizes: byte-reproducible), graph_timing.json (timings) and
graph_benchmark.png. With --point_cost it instead times a sweep of the graph
(default levels 50,70,90) against the Keras model's predict on the same test
data, alternating, and writes point_cost.json.

  python experiments/benchmark.py --methods=weight,unit,obs \
      --levels=0,50,80,90,95,99 --batch_sizes=1,10000 --out_dir=img/benchmark
  python experiments/benchmark.py --weights_dir=weights/lenet5-mnist \
      --levels=0,50,70,90 --out_dir=img/benchmark-lenet5
  python experiments/benchmark.py --model_file=my.keras --data=my.npz --out_dir=runs/bench
  python experiments/benchmark.py --weights_dir=weights/lenet5-mnist --point_cost \
      --out_dir=img/benchmark-lenet5
"""

from tfprune import commands  # the flags and main of `tfprune benchmark`

if __name__ == '__main__':
  commands.run_script('benchmark', __doc__)
