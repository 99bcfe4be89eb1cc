"""experiments/iaat_cost/cost.py (the cost experiment's report): paired differences, the goal's verdict, the table and the picture."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.iaat_cost import cost


def _runs(values, clean=None):
  clean = clean or [0.98] * len(values)
  return [
    {"seed": s, "autoattack": a, "clean": c, "chance": 0.106, "n_examples": 359}
    for s, (a, c) in enumerate(zip(values, clean))
  ]


EXACT = _runs([0.66, 0.65, 0.69, 0.71, 0.63], [0.986, 0.981, 0.986, 0.964, 0.972])


def test_paired_difference_pairs_by_seed():
  other = list(reversed(_runs([0.67, 0.64, 0.70, 0.70, 0.64])))  # order must not matter
  d = cost.paired_difference(other, EXACT, "autoattack")
  diffs = np.array([0.01, -0.01, 0.01, -0.01, 0.01])
  assert d["n"] == 5
  assert d["diff"] == pytest.approx(diffs.mean())
  assert d["se"] == pytest.approx(diffs.std(ddof=1) / math.sqrt(5))
  # The interval is Student's t with 4 degrees of freedom (2.776 SE), as scipy's.
  ci = scipy_stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
  assert d["ci"] == pytest.approx([ci.low, ci.high])
  # Seeds the base lacks are left out; none shared: nan.
  assert cost.paired_difference(other[:2], EXACT[:1], "autoattack")["n"] == 0


def test_summarise_gives_sample_std():
  s = cost.summarise(EXACT)
  values = np.array([r["autoattack"] for r in EXACT])
  assert s["seeds"] == [0, 1, 2, 3, 4]
  assert s["autoattack_mean"] == pytest.approx(values.mean())
  assert s["autoattack_std"] == pytest.approx(values.std(ddof=1))


def test_judge_tells_within_the_margin_only_when_the_seeds_can():
  # Every seed within +-0.2 points: told within 1 point.
  close = _runs(
    [a["autoattack"] + d for a, d in zip(EXACT, [0.002, -0.002, 0.0, 0.001, -0.001])],
    [r["clean"] for r in EXACT],
  )
  j = cost.judge(close, EXACT, [1.1, 1.2])
  assert j["aa_within_margin"] and j["aa_told"] and j["meets_and_told"]
  assert "the seeds tell" in j["aa_verdict"]
  # Same mean loss (-0.5 points) but seeds scattered by +-3 points: cannot tell.
  noisy = _runs(
    [a["autoattack"] + d for a, d in zip(EXACT, [0.025, -0.035, 0.03, -0.03, -0.015])],
    [r["clean"] for r in EXACT],
  )
  j = cost.judge(noisy, EXACT, [1.1])
  assert j["meets_on_means"] and not j["aa_told"] and not j["meets_and_told"]
  assert "cannot tell" in j["aa_verdict"]
  bound = -(j["aa_diff_vs_exact"] - scipy_stats.t.ppf(0.975, 4) * j["aa_diff_se"])
  assert j["aa_diff_ci"][0] == pytest.approx(-bound)
  assert f"rule out only a loss of more than {100 * bound:.1f} points" in j["aa_verdict"]
  # 5 points below on every seed: told to miss.
  worse = _runs([r["autoattack"] - 0.05 for r in EXACT], [r["clean"] for r in EXACT])
  j = cost.judge(worse, EXACT, [1.1])
  assert j["aa_told"] and not j["aa_within_margin"] and not j["meets_on_means"]
  assert "more than 1 point below, and the seeds tell" in j["aa_verdict"]


def test_judge_needs_the_cost_on_every_model_and_no_lower_clean():
  same = _runs([r["autoattack"] for r in EXACT], [r["clean"] for r in EXACT])
  assert not cost.judge(same, EXACT, [1.1, 1.4])["cost_ok"]
  assert not cost.judge(same, EXACT, [])["cost_ok"]
  lower_clean = _runs([r["autoattack"] for r in EXACT], [r["clean"] - 0.02 for r in EXACT])
  j = cost.judge(lower_clean, EXACT, [1.1])
  assert not j["clean_not_lower"] and not j["meets_on_means"]


def test_seeds_that_fail_to_learn_are_named_and_set_apart():
  runs = _runs([0.08, 0.85, 0.86], [0.08, 0.99, 1.0])  # seed 0: a constant prediction
  s = cost.summarise(runs)
  assert s["failed_seeds"] == [0]
  assert s["autoattack_mean_learned"] == pytest.approx(0.855)
  row = {"variant": "pgd_at", **s, **cost.judge(runs, EXACT, [1.0])}
  assert "fails to learn on 1 of 3 seeds; on the others 99.5 +- 0.7" in cost.table_markdown(
    [row], []
  )
  assert cost.summarise(EXACT)["failed_seeds"] == []


def test_table_and_plot(tmp_path):
  rows = []
  for name, runs, ratio in (
    ("pgd_at", _runs([0.07] * 5, [0.07] * 5), 1.0),
    ("exact", EXACT, 2.2),
    ("reuse", EXACT, 1.15),
  ):
    row = {
      "variant": name,
      "step_time_ratios": {"cnn": ratio},
      "passes_per_image": 16.0,
      **cost.summarise(runs),
    }
    if name != "exact":
      row.update(cost.judge(runs, EXACT, [ratio]))
    rows.append(row)
  table = cost.table_markdown(rows, ["cnn"])
  assert "| reuse | 1.15 | 16.0 |" in table and "met, told" in table
  assert table.count("\n") == 2 + len(rows)
  path = cost.plot_cost(
    {"digits": rows}, str(tmp_path / "cost.png"), model="cnn", aa_eps={"digits": 0.2}
  )
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
