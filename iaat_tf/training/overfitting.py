"""Catastrophic overfitting: the known failure of single-step adversarial training.

With FGSM-based training (Wong et al., 2020, "Fast is better than free"),
the model can learn within an epoch to defeat the single-step attack alone:
its PGD accuracy collapses towards 0 while its clean accuracy holds or
rises. `detect` reads the per-epoch validation values (`val_pgd_acc`,
`val_clean_acc`, as in history.csv) and reports the first epoch at which

* PGD accuracy fell below `DROP` x its best so far, and at least `MIN_DROP`
  (absolute) below it, while
* clean accuracy stayed within `CLEAN_KEPT` of its value at that best epoch

(a collapse with clean accuracy falling too is divergence, not this). The
thresholds are heuristics, stated here so a report can be checked.
"""

from typing import Mapping, Optional, Sequence

DROP = 0.5
MIN_DROP = 0.1
CLEAN_KEPT = 0.05
PGD, CLEAN = "val_pgd_acc", "val_clean_acc"


def detect(rows: Sequence[Mapping]) -> Optional[dict]:
  """The first collapse in per-epoch rows ({"epoch", PGD, CLEAN, ...}), or None.

  Rows without both validation values (epochs not validated) are skipped.
  """
  best = None
  for row in sorted(rows, key=lambda r: r.get("epoch", 0)):
    pgd, clean = row.get(PGD), row.get(CLEAN)
    if not isinstance(pgd, (int, float)) or not isinstance(clean, (int, float)):
      continue
    if best is not None:
      top, top_clean = best[PGD], best[CLEAN]
      if (pgd < DROP * top and pgd <= top - MIN_DROP
          and clean >= top_clean - CLEAN_KEPT):
        return {"epoch": int(row["epoch"]), PGD: float(pgd), CLEAN: float(clean),
                "best_epoch": int(best["epoch"]), "best_val_pgd_acc": float(top),
                "best_val_clean_acc": float(top_clean)}
    if best is None or pgd > best[PGD]:
      best = row
  return None


def message(found: Mapping) -> str:
  """One line for the log."""
  return (f"catastrophic overfitting at epoch {found['epoch']}: validation PGD "
          f"accuracy {found[PGD]:.4f}, down from {found['best_val_pgd_acc']:.4f} "
          f"at epoch {found['best_epoch']}, while clean accuracy held "
          f"({found[CLEAN]:.4f}); the single-step attack no longer finds the "
          f"model's adversarial examples (try --eps_ramp_epochs, a smaller "
          f"--eps, or robust early stopping with --validation_fraction)")
