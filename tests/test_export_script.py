"""A saved export scores through `experiments/evaluate.py` exactly like the sweep.

The sweep writes the exports in-process; `evaluate.py`'s main runs through
`cli.run` in-process too (`helpers.run_main`). Bad exports and bad sweep input
through the scripts are cases of tests/test_cli.py.
"""

import csv

from tests import helpers
from tfprune import ziptags
from tfprune.drivers import sweep


def test_saved_export_scores_like_the_sweep(tmp_path, mnist_slice_dir, capsys):
  # Both score the first 1,000 test images: the subject is their agreement.
  data_dir = mnist_slice_dir
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(str(helpers.PREBUILT), str(out), data_dir=data_dir,
                              levels=(90,), save_pruned=True))
  with open(out / 'sweep.csv', newline='') as f:
    rows = {r['method']: r for r in csv.DictReader(f)}
  for method, row in rows.items():
    path = out / 'pruned' / f'{method}-k90.npz'
    # The file is the network's bytes (the column) plus its provenance tag.
    tag = ziptags.read(path)
    assert tag == {'data': 'mnist', 'input_shape': [28, 28, 1],
                   'value_range': [0.0, 1.0]}
    assert path.stat().st_size == int(row['size_bytes']) + len(ziptags.comment(tag))
    code, stdout, stderr = helpers.run_main(
        'evaluate', f'--export={path}', f'--data_dir={data_dir}', capsys=capsys)
    assert code == 0, stderr
    assert f'accuracy {100 * float(row["accuracy"]):.2f}%' in stdout
    assert f'layers {row["units"]}' in stdout
