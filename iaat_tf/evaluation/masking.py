"""Signs of gradient masking in a robustness report or an AutoAttack report.

`gradient_masking_report` reads a `robustness.RobustnessReport` (or its
`to_dict()`): an attack above the clean accuracy, a curve rising with the
radius, APGD weaker than PGD, no break at a huge radius.
`sequence_masking_report` reads an AutoAttack report (`autoattack.py`): the
sequence rising, or the gradient-free attack breaking what every gradient
attack left. Pure Python on the reports' numbers.
"""

import math
from typing import Any, Mapping, Optional

from iaat_tf.evaluation.robustness import WORST_CASE, RobustnessReport


def _curve_dicts(
  report: RobustnessReport | Mapping[str, Any],
) -> tuple[float, int, list[dict[str, float]]]:
  """(clean accuracy, number of examples, curve sorted by eps) of either form."""
  data = report.to_dict() if isinstance(report, RobustnessReport) else report
  curve = sorted((dict(p) for p in data["curve"]), key=lambda p: p["eps"])
  return float(data["clean_accuracy"]), int(data["num_examples"]), curve


def _accuracy_columns(point: Mapping[str, float]) -> dict[str, float]:
  return {
    k: float(v)
    for k, v in point.items()
    if k != "eps" and v is not None and math.isfinite(float(v))
  }


def gradient_masking_report(
  report: RobustnessReport | Mapping[str, Any],
  *,
  tolerance_examples: int = 1,
  apgd_gap: float = 0.02,
  large_eps: Optional[float] = None,
  large_eps_max_accuracy: float = 0.05,
) -> list[str]:
  """Human-readable signs of gradient masking in a report (empty: none found).

  Accepts a `RobustnessReport` or its `to_dict()` form. The checks:

  1. Attack above clean: an attack's accuracy exceeds the clean accuracy: the
     attack (not the model) failed. `evaluate_robustness` gates attacks on
     clean correctness, so this fires on reports from elsewhere, or bugs.
  2. Non-monotone curve: an accuracy column rises with eps, above its minimum
     at any smaller eps by more than `tolerance_examples` examples. A larger
     ball contains the smaller one, so a working attack can only do better.
  3. APGD weaker than PGD: at some eps, APGD-CE is more than `apgd_gap` above
     PGD-CE, or the best APGD more than `apgd_gap` above the best PGD. APGD's
     adaptive step should match or beat fixed-step PGD; a gap suggests a
     loss surface that fools one step schedule (e.g. noisy gradients).
  4. Not broken at a huge radius: the largest eps is >= `large_eps` and the
     worst-case (else the lowest) accuracy is still above
     `large_eps_max_accuracy`. On natural images an L-inf ball of 0.25 (the
     default under linf; L2 reports have no default, as the huge L2 radius
     depends on the image size) destroys the class content. Caveat:
     adversarially trained MNIST models are genuinely robust at 0.3.

  A worst case far below every single attack is *not* flagged (attacks
  finding different examples is normal). An AutoAttack report is checked by
  `sequence_masking_report` instead.
  """
  if isinstance(report, Mapping) and "accuracy_after_attack" in report:
    return sequence_masking_report(report, tolerance_examples=tolerance_examples)
  clean, num_examples, curve = _curve_dicts(report)
  norm = getattr(report, "norm", None) or dict(report).get("norm", "linf")  # type: ignore[arg-type]
  large_eps = (0.25 if norm == "linf" else math.inf) if large_eps is None else large_eps
  warnings: list[str] = []
  tol = tolerance_examples / max(num_examples, 1) + 1e-9

  for point in curve:
    for name, acc in _accuracy_columns(point).items():
      if acc > clean + 1e-9:
        warnings.append(
          f"{name} accuracy {acc:.4f} at eps={point['eps']:.5g} is above the "
          f"clean accuracy {clean:.4f}: the attack is failing."
        )

  names = sorted({k for p in curve for k in _accuracy_columns(p)})
  for name in names:
    lowest: Optional[float] = None
    lowest_eps: Optional[float] = None
    for point in curve:
      value = _accuracy_columns(point).get(name)
      if value is None:
        continue
      if lowest is not None and value > lowest + tol:
        warnings.append(
          f"{name} accuracy rises with eps: {value:.4f} at eps="
          f"{point['eps']:.5g} > {lowest:.4f} at eps={lowest_eps:.5g}."
        )
      if lowest is None or value < lowest:
        lowest, lowest_eps = value, point["eps"]

  for point in curve:
    cols = _accuracy_columns(point)
    pgd_cols = {k: v for k, v in cols.items() if k.startswith("pgd_")}
    apgd_cols = {k: v for k, v in cols.items() if k.startswith("apgd_")}
    if "apgd_ce" in cols and "pgd_ce" in cols and (cols["apgd_ce"] > cols["pgd_ce"] + apgd_gap):
      warnings.append(
        f"APGD-CE ({cols['apgd_ce']:.4f}) is weaker than PGD-CE "
        f"({cols['pgd_ce']:.4f}) at eps={point['eps']:.5g}."
      )
    if pgd_cols and apgd_cols and (min(apgd_cols.values()) > min(pgd_cols.values()) + apgd_gap):
      warnings.append(
        f"The best APGD ({min(apgd_cols.values()):.4f}) is weaker than the "
        f"best PGD ({min(pgd_cols.values()):.4f}) at eps={point['eps']:.5g}."
      )

  if curve and curve[-1]["eps"] >= large_eps:
    cols = _accuracy_columns(curve[-1])
    worst: Optional[float] = cols.get(WORST_CASE, min(cols.values()) if cols else None)
    if worst is not None and worst > large_eps_max_accuracy:
      warnings.append(
        f"Robust accuracy {worst:.4f} at eps={curve[-1]['eps']:.5g} (>= "
        f"{large_eps}) is not near 0: suspect masked gradients unless the model "
        "was trained to be robust at this radius."
      )
  return warnings


GRADIENT_FREE = ("square",)


def sequence_masking_report(
  report: Mapping[str, Any], *, tolerance_examples: int = 1, gradient_free_gap: float = 0.01
) -> list[str]:
  """Signs of gradient masking in an AutoAttack report (its `to_dict()`).

  1. An accuracy after an attack above the clean accuracy, or rising along
     the sequence (each attack only removes examples): a bug.
  2. The gradient-free attack (Square) breaks more than `gradient_free_gap`
     (and `tolerance_examples`) of the examples that survived every gradient
     attack before it: the gradients are likely masked.
  """
  clean = float(report["clean_accuracy"])
  num_examples = max(int(report.get("n_examples", 1)), 1)
  after = dict(report["accuracy_after_attack"])
  tol = tolerance_examples / num_examples + 1e-9
  warnings = []
  previous_name, previous = "clean", clean
  for name, acc in after.items():
    if acc > previous + 1e-9:
      warnings.append(
        f"accuracy after {name} ({acc:.4f}) is above the "
        f"accuracy after {previous_name} ({previous:.4f}): "
        "the sequence is broken."
      )
    gap = previous - acc
    if name in GRADIENT_FREE and previous_name != "clean" and gap > max(gradient_free_gap, tol):
      warnings.append(
        f"the gradient-free {name} attack broke {gap:.4f} of the examples "
        f"that survived every gradient attack ({previous:.4f} -> "
        f"{acc:.4f}): gradients are likely masked, so gradient-based "
        "robustness numbers overstate robustness."
      )
    previous_name, previous = name, acc
  return warnings
