"""Lottery tickets and dynamic pruning: exact masks, exact rewinding, pruning
steps, reproducibility, the results folder and refused configurations."""

import fractions
import json

import numpy as np
import pytest

from tests import helpers
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.reports import plots
from tfprune.reports import trial_plots
from experiments.studies import trial_statistics
from experiments.studies import trials
from tfprune.training import lottery
from tfprune.training import prune_rounds

THIRDS = (fractions.Fraction(1, 3), fractions.Fraction(2, 3))


@pytest.fixture(scope='module')
def splits(data_dir):
  return trials.load_splits(trials.LotteryConfig(out_dir='', data_dir=data_dir))


def build():
  return models.get('penguin_mlp')((12,), 3)


def schedule(epochs):
  return lottery.Schedule(epochs, batch_size=50, learning_rate=1e-2)


def test_remaining_counts_are_the_exact_integer_form_of_one_minus_p_to_the_r():
  # 144 -> 144 - floor(0.2 * 144) = 116 -> 116 - 23 = 93 -> 75 -> 60 -> 48
  #     -> 48 - floor(9.6) = 39 -> 39 - 7 = 32 -> 32 - 6 = 26.
  assert prune_rounds.remaining_counts(144, 0.2, 8) == [144, 116, 93, 75, 60, 48, 39,
                                                   32, 26]
  assert prune_rounds.remaining_counts(36, 0.17, 2) == [36, 30, 25]
  # 0.07 is 7% exactly, not 7.000000000000001% (which would prune one more).
  assert prune_rounds.remaining_counts(100, 0.07, 1) == [100, 93]
  n, p, r = 1_000_000, 0.2, 8
  # Each floor keeps less than one extra weight: within r of n (1 - p)^r.
  assert abs(prune_rounds.remaining_counts(n, p, r)[-1] - n * (1 - p) ** r) < r


def test_prune_remaining_only_shrinks_and_drops_the_smallest_survivors():
  w = np.random.default_rng(0).normal(size=(12, 12)).astype(np.float32)
  mask = None
  for expected in prune_rounds.remaining_counts(144, 0.2, 8)[1:]:
    new = prune_rounds.prune_remaining(w, 0.2, mask)
    old = np.ones_like(new) if mask is None else mask
    assert np.count_nonzero(new) == expected
    assert not (new & ~old).any()  # never revives a weight
    dropped = old & ~new
    assert np.abs(w[new]).min() > np.abs(w[dropped]).max()
    mask = new


class _Recorder(keras.callbacks.Callback):
  """Records the weights at train begin, epoch begin and epoch end."""

  def __init__(self):
    super().__init__()
    self.begins, self.epoch_begins, self.epoch_ends = [], [], []

  def on_train_begin(self, logs=None):
    self.begins.append(self.model.get_weights())

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch_begins.append(self.model.get_weights())

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_ends.append(self.model.get_weights())


@pytest.mark.parametrize('rewind_epoch', [0, 2], ids=['init', 'late'])
def test_lottery_rewinds_survivors_exactly_and_masks_shrink(splits, rewind_epoch):
  snapshots = _Recorder()
  dense = lottery.train_dense(build, splits, schedule(4), seed=0,
                              rewind_epoch=rewind_epoch, callbacks=[snapshots])
  rewind = (snapshots.begins[0] if rewind_epoch == 0
            else snapshots.epoch_ends[rewind_epoch - 1])
  assert all(np.array_equal(a, b) for a, b in zip(dense.rewind, rewind))
  assert not np.array_equal(dense.trained[0], dense.rewind[0])
  recorder = _Recorder()
  trial = lottery.lottery_ticket(dense, splits, schedule(4), 0, 0.2, 3,
                                 callbacks=[recorder])
  # kernels are weights 0 (12x12) and 2 (12x3); biases 1 and 3.
  counts = {0: prune_rounds.remaining_counts(144, 0.2, 3),
            2: prune_rounds.remaining_counts(36, 0.2, 3)}
  assert counts == {0: [144, 116, 93, 75], 2: [36, 29, 24, 20]}
  previous = {0: np.ones((12, 12), bool), 2: np.ones((12, 3), bool)}
  for r, start in enumerate(recorder.begins, start=1):
    for i in (0, 2):
      mask = start[i] != 0
      assert np.count_nonzero(mask) == counts[i][r]
      assert not (mask & ~previous[i]).any()
      np.testing.assert_array_equal(start[i], np.where(mask, rewind[i], 0))
      previous[i] = mask
    for i in (1, 3):
      np.testing.assert_array_equal(start[i], rewind[i])
  assert len(recorder.epoch_ends) == 3 * (4 - rewind_epoch)
  for end in recorder.epoch_ends[-(4 - rewind_epoch):]:
    assert not (end[0] * ~previous[0]).any() and not (end[2] * ~previous[2]).any()
  assert [r.remaining for r in trial.rounds] == [1.0, 145 / 180, 117 / 180,
                                                 95 / 180]
  assert [row['round'] for row in trial.history] == (
      [0] * 4 + [1] * (4 - rewind_epoch) + [2] * (4 - rewind_epoch)
      + [3] * (4 - rewind_epoch))


def test_random_reinit_trains_the_ticket_masks_from_fresh_weights(splits):
  dense = lottery.train_dense(build, splits, schedule(2), seed=2)
  ticket = lottery.lottery_ticket(dense, splits, schedule(2), 2, 0.5, 2)
  assert [tuple(np.count_nonzero(m) for m in masks) for masks in ticket.masks] == [
      (72, 18), (36, 9)]
  recorder = _Recorder()
  control = lottery.random_reinit(build, splits, schedule(2), ticket, 2,
                                  callbacks=[recorder])
  for start, masks in zip(recorder.begins, ticket.masks):
    for i, mask in zip((0, 2), masks):
      np.testing.assert_array_equal(start[i] != 0, mask)
      assert not np.isin(start[i][mask], dense.rewind[i][mask]).any()
  assert [r.remaining for r in control.rounds] == [
      r.remaining for r in ticket.rounds]
  assert control.rounds[0] == ticket.rounds[0]


class _ZeroCheck(keras.callbacks.Callback):
  """Fails if a weight pruned by the masker is non-zero after a batch."""

  def __init__(self):
    super().__init__()
    self.masker = None
    self.batches = 0

  def on_train_batch_end(self, batch, logs=None):
    for variable, mask in self.masker.pairs:
      assert not variable.numpy()[~mask].any()
    self.batches += 1


def test_dynamic_prunes_at_the_right_epochs_and_never_rewinds(splits, monkeypatch):
  recorder, zero_check = _Recorder(), _ZeroCheck()
  real = lottery.masking.KeepMasked

  def keep(pairs):
    zero_check.masker = real(pairs)
    return zero_check.masker

  monkeypatch.setattr(lottery.masking, 'KeepMasked', keep)
  trial = lottery.dynamic(build, splits, schedule(6), 0, 0.17, THIRDS,
                          callbacks=[recorder, zero_check])
  assert prune_rounds.prune_epochs(THIRDS, 6) == [2, 4]
  # 12x12: 144 -> 144 - 24 = 120 -> 120 - 20 = 100; 12x3: 36 -> 30 -> 25.
  kept = [(np.count_nonzero(w[0]), np.count_nonzero(w[2]))
          for w in recorder.epoch_begins]
  assert kept == [(144, 36)] * 2 + [(120, 30)] * 2 + [(100, 25)] * 2
  sparsity = [round(row['sparsity'] * 180) for row in trial.history]
  assert sparsity == [0, 0, 30, 30, 55, 55]
  assert trial.result.remaining == 125 / 180
  for epoch in (2, 4):
    before, after = recorder.epoch_ends[epoch - 1], recorder.epoch_begins[epoch]
    for i in range(4):  # pruning only zeroes: kept weights keep their values
      mask = after[i] != 0 if i in (0, 2) else np.ones_like(after[i], bool)
      np.testing.assert_array_equal(after[i], np.where(mask, before[i], 0))
  assert zero_check.batches == 6 * 5  # 203 examples in batches of 50


def test_a_seeded_trial_is_reproducible(splits):
  a = lottery.dynamic(build, splits, schedule(3), 7, 0.2, THIRDS)
  b = lottery.dynamic(build, splits, schedule(3), 7, 0.2, THIRDS)
  c = lottery.dynamic(build, splits, schedule(3), 8, 0.2, THIRDS)
  assert a.history == b.history and a.rounds == b.rounds
  assert a.history != c.history


def test_prune_after_prunes_the_trained_weights_without_retraining(splits):
  dense = lottery.train_dense(build, splits, schedule(2), seed=1)
  trial = lottery.prune_after(dense, splits, 1, 0.3)
  weights = dense.model.get_weights()
  for i in (0, 2):
    expected = np.where(prune_rounds.prune_remaining(dense.trained[i], 0.3),
                        dense.trained[i], 0)
    np.testing.assert_array_equal(weights[i], expected)
  assert trial.result.remaining == (101 + 26) / 180
  assert trial.seconds == dense.seconds


def test_permutation_p_counts_every_split_exactly():
  # 4 values, 6 splits into 2 + 2; only the observed one and its mirror reach
  # a mean difference of 2.
  assert trial_statistics.permutation_p([0, 1], [2, 3]) == pytest.approx(2 / 6)
  assert trial_statistics.permutation_p([0, 0, 0, 0, 0], [1, 1, 1, 1, 1]) == pytest.approx(
      2 / 252)
  assert trial_statistics.permutation_p([1, 2], [1, 2]) == 1.0


def test_run_writes_every_result_and_refuses_an_existing_folder(data_dir, tmp_path):
  config = trials.LotteryConfig(out_dir=str(tmp_path / 'out'), data_dir=data_dir,
                                model='penguin_mlp', epochs=3, rounds=2,
                                learning_rate=1e-2, seeds=(3,),
                                procedures=trials.PROCEDURES + trials.CONTROLS)
  summary = trials.run(config, command='pytest')
  out = tmp_path / 'out'
  assert sorted(p.name for p in out.iterdir()) == [
      'curves.csv', 'curves.png', 'lottery_config.json', 'rounds.csv',
      'summary.csv', 'summary.md', 'ticket_curve.png', 'timing.json']
  assert [(r['procedure'], r['compared_with']) for r in summary] == [
      ('unpruned', ''), ('prune_after', 'unpruned'), ('lottery', 'unpruned'),
      ('random_reinit', 'lottery'), ('dynamic', 'unpruned')]
  # Per seed: the dense run 3 (as unpruned only) + lottery 3 * 2
  # + random_reinit 3 * 2 + dynamic 3.
  curves = helpers.read_csv(out / 'curves.csv')
  assert len(curves) == 3 + 6 + 6 + 3
  assert {(r['procedure'], r['round']) for r in curves} == {
      ('unpruned', '0'), ('lottery', '1'), ('lottery', '2'),
      ('random_reinit', '1'), ('random_reinit', '2'), ('dynamic', '0')}
  rounds = helpers.read_csv(out / 'rounds.csv')
  assert [(r['procedure'], r['round']) for r in rounds[:5]] == [
      ('unpruned', '0'), ('prune_after', '1'), ('lottery', '0'),
      ('lottery', '1'), ('lottery', '2')]
  record = json.loads((out / 'lottery_config.json').read_text())
  assert record['config']['prune_points'] == ['1/3', '2/3']
  assert record['examples'] == {'train': 203, 'validation': 65, 'test': 65}
  assert not any('seconds' in key for key in record)  # in timing.json
  assert 'training s' not in (out / 'summary.md').read_text()
  assert (out / 'summary.md').read_text() == trial_statistics.format_table(
      summary, seconds=False) + '\n'
  assert json.loads((out / 'timing.json').read_text())['wall_seconds'] > 0
  with pytest.raises(TfpruneError, match='already exists'):
    trials.run(config)


@pytest.mark.parametrize('field,value,pattern', [
    ('prune_fraction', 1.0, r'prune_fraction must be in \[0, 1\) \(a fraction'),
    ('prune_fraction', 30, r'prune_fraction must be in \[0, 1\)'),
    ('dynamic_fraction', -0.1, r'dynamic_fraction must be in \[0, 1\)'),
    ('prune_points', ('1/3', '1'), r'prune point 1 is outside \(0, 1\)'),
    ('prune_points', ('0',), r'prune point 0 is outside \(0, 1\)'),
    ('prune_points', ('half',), "prune point 'half' is not a number"),
    ('prune_points', ('1/100',), 'falls on epoch 0'),
    ('rounds', 0, 'rounds must be at least 1, got 0'),
    ('rewind_epoch', 10, r'rewind_epoch must be in \[0, epochs=10\)'),
    ('procedures', ('lottery', 'rigl'), "unknown procedure 'rigl'"),
    ('seeds', (1, 1), 'seeds must be distinct'),
    ('procedures', ('random_reinit',), 'random_reinit reuses the lottery masks'),
])
def test_bad_config_is_refused(field, value, pattern):
  with pytest.raises(TfpruneError, match=pattern):
    trials.LotteryConfig(out_dir='x', epochs=10, **{field: value})


def test_curves_plot_draws_every_trial_including_prune_after(tmp_path, monkeypatch):
  curves = [{'procedure': p, 'seed': '0', 'round': '0', 'epoch': str(e),
             'train_loss': '1', 'train_accuracy': '0.5', 'val_loss': '1',
             'val_accuracy': '0.5', 'sparsity': '0'}
            for p in ('unpruned', 'dynamic') for e in (1, 2)]
  rounds = [{'procedure': p, 'seed': '0', 'round': r, 'remaining': '1',
             'val_loss': '1', 'val_accuracy': '0.5', 'test_loss': '1',
             'test_accuracy': '0.5'}
            for p, r in (('unpruned', '0'), ('prune_after', '1'), ('dynamic', '0'))]
  figures = []
  monkeypatch.setattr(plots, 'save_figure', lambda fig, path: figures.append(fig))
  trial_plots.plot_curves(curves, rounds, tmp_path / 'c.png')
  labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
  assert sorted(labels) == ['dynamic train', 'dynamic validation',
                            'prune_after (validation)', 'unpruned train',
                            'unpruned validation']
