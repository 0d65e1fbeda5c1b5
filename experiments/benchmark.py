"""Benchmark pruned networks against the dense one, measured in the same run.

Writes benchmark.json and benchmark.png to --out_dir and prints the table.
A CNN weight folder or --model_file is benchmarked as a graph: the compacted
Keras model (unit) or the masked graph (weight) against the dense one at
batch 1 and 256, in alternating blocks; graph_benchmark.csv (accuracy,
sizes), graph_timing.json (timings) and graph_benchmark.png. With
--point_cost it instead times a sweep of the graph (default levels 50,70,90)
against the Keras model's predict on the same test data, alternating, and
writes point_cost.json (seconds per sweep point / seconds per predict).

  python experiments/benchmark.py
  python experiments/benchmark.py --methods=weight,unit,obs --out_dir=img/benchmark
  python experiments/benchmark.py --weights_dir=weights/lenet5-mnist \
      --levels=0,50,70,90 --out_dir=img/benchmark-lenet5
  python experiments/benchmark.py --model_file=my.keras --data=my.npz --out_dir=runs/bench
  python experiments/benchmark.py --weights_dir=weights/lenet5-mnist --point_cost \
      --out_dir=img/benchmark-lenet5
"""

from tfprune import commands  # the flags and main of `tfprune benchmark`

if __name__ == '__main__':
  commands.run_script('benchmark', __doc__)
