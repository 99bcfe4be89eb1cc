"""Catastrophic overfitting: the known failure of single-step adversarial training.

With FGSM-based training (Wong et al., 2020, "Fast is better than free"),
the model can learn within an epoch to defeat the single-step attack alone:
its PGD accuracy collapses towards 0 while its clean accuracy holds or
rises. `detect` reads the per-epoch validation values (`val_pgd_acc`,
`val_clean_acc`, as in history.csv) of an adversarially trained run and
reports the first validated epoch at which, compared with the previous
validated epoch (as Wong et al.'s check compares each epoch's PGD accuracy
with the previous one's, CIFAR10/train_fgsm.py `--early-stop`),

* PGD accuracy fell below `DROP` x its previous value, and at least
  `MIN_DROP` (absolute) below it, while
* clean accuracy stayed within `CLEAN_KEPT` of its previous value

(a collapse with clean accuracy falling too is divergence, not this). A
`standard` (clean) run is never checked: its PGD accuracy is expected to
fall as its clean accuracy rises. The thresholds are heuristics, stated here
so a report can be checked.
"""

from typing import Mapping, Optional, Sequence

DROP = 0.5
MIN_DROP = 0.1
CLEAN_KEPT = 0.05
PGD, CLEAN = "val_pgd_acc", "val_clean_acc"


def detect(rows: Sequence[Mapping], method: str = "pgd_at") -> Optional[dict]:
  """The first collapse in per-epoch rows ({"epoch", PGD, CLEAN, ...}), or None.

  Rows without both validation values (epochs not validated) are skipped;
  `method="standard"` (no adversarial training) is never flagged.
  """
  if method == "standard":
    return None
  previous = None
  for row in sorted(rows, key=lambda r: r.get("epoch", 0)):
    pgd, clean = row.get(PGD), row.get(CLEAN)
    if not isinstance(pgd, (int, float)) or not isinstance(clean, (int, float)):
      continue
    if previous is not None:
      top, top_clean = previous[PGD], previous[CLEAN]
      if pgd < DROP * top and pgd <= top - MIN_DROP and clean >= top_clean - CLEAN_KEPT:
        return {
          "epoch": int(row["epoch"]),
          PGD: float(pgd),
          CLEAN: float(clean),
          "previous_epoch": int(previous["epoch"]),
          "previous_val_pgd_acc": float(top),
          "previous_val_clean_acc": float(top_clean),
        }
    previous = row
  return None


def message(found: Mapping) -> str:
  """One line for the log."""
  return (
    f"catastrophic overfitting at epoch {found['epoch']}: validation PGD "
    f"accuracy {found[PGD]:.4f}, down from {found['previous_val_pgd_acc']:.4f} "
    f"at epoch {found['previous_epoch']}, while clean accuracy held "
    f"({found[CLEAN]:.4f}); the single-step attack no longer finds the "
    f"model's adversarial examples (try --eps_ramp_epochs, a smaller "
    f"--eps, or robust early stopping with --validation_fraction)"
  )
