"""Catastrophic-overfitting detection on per-epoch validation rows."""

import pytest

from iaat_tf.training import overfitting


def _rows(pgd, clean):
  return [
    {"epoch": e + 1, "val_pgd_acc": p, "val_clean_acc": c, "loss": 1.0}
    for e, (p, c) in enumerate(zip(pgd, clean))
  ]


def test_a_pgd_collapse_with_clean_accuracy_held_is_reported_once():
  rows = _rows([0.30, 0.42, 0.45, 0.03, 0.01], [0.70, 0.78, 0.80, 0.83, 0.85])
  found = overfitting.detect(rows)
  assert found == {
    "epoch": 4,
    "val_pgd_acc": 0.03,
    "val_clean_acc": 0.83,
    "previous_epoch": 3,
    "previous_val_pgd_acc": 0.45,
    "previous_val_clean_acc": 0.80,
  }
  line = overfitting.message(found)
  assert "epoch 4" in line and "0.4500" in line and "\n" not in line


@pytest.mark.parametrize(
  "pgd,clean",
  [
    ([0.30, 0.42, 0.40, 0.38], [0.7, 0.8, 0.8, 0.8]),  # Noise, no collapse.
    ([0.30, 0.42, 0.05, 0.02], [0.7, 0.8, 0.3, 0.1]),  # Clean fell too: divergence.
    ([0.08, 0.09, 0.02, 0.01], [0.7, 0.8, 0.8, 0.8]),  # Under 10 points lost.
    ([0.40, 0.42, 0.25, 0.22], [0.7, 0.8, 0.8, 0.8]),  # Not below half the best.
  ],
)
def test_no_report_without_a_collapse(pgd, clean):
  assert overfitting.detect(_rows(pgd, clean)) is None


def test_epochs_without_validation_are_skipped_and_order_is_by_epoch():
  rows = _rows([0.4, 0.45, 0.02], [0.8, 0.8, 0.82])
  rows.insert(1, {"epoch": 1.5, "loss": 0.3})  # Not validated.
  assert overfitting.detect(list(reversed(rows)))["epoch"] == 3


def test_a_clean_run_is_never_flagged():
  """`standard` training: PGD accuracy is expected to fall as clean rises."""
  rows = _rows([0.12, 0.01, 0.01], [0.35, 0.55, 0.60])
  assert overfitting.detect(rows, "pgd_at")["epoch"] == 2
  assert overfitting.detect(rows, "standard") is None


def test_clean_accuracy_is_compared_with_the_previous_epoch_not_the_best_pgd_one():
  # The best PGD epoch (1) had clean 0.30; by epoch 3 clean is 0.80 and PGD
  # has fallen slowly (no collapse between consecutive epochs), then in
  # epoch 4 PGD collapses while clean holds against epoch 3.
  rows = _rows([0.40, 0.36, 0.33, 0.02], [0.30, 0.60, 0.80, 0.79])
  found = overfitting.detect(rows)
  assert found["epoch"] == 4 and found["previous_epoch"] == 3
  # A slow decline over many epochs (each step under the thresholds) is
  # not a collapse, although it ends far below the best.
  slow = _rows([0.50, 0.42, 0.34, 0.27, 0.21, 0.16], [0.8] * 6)
  assert overfitting.detect(slow) is None
  # Clean accuracy that fell against the previous epoch: divergence.
  assert overfitting.detect(_rows([0.40, 0.02], [0.80, 0.60])) is None
