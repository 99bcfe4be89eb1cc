"""The frontier experiment: its analysis (reports/frontier.py) on numbers with
known answers, and the command end to end on tiny digits runs (resumed)."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from iaat_tf.cli import frontier as command
from iaat_tf.reports import frontier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _runs(setting, method, pairs, **extra):
  return [
    {
      "setting": setting,
      "method": method,
      "flags": [f"--method={method}"],
      "seed": i,
      "clean": c,
      "autoattack": a,
      "chance": 0.1,
      "n_examples": 359,
      **extra,
    }
    for i, (c, a) in enumerate(pairs)
  ]


def _example():
  # PGD-AT: a clean/robust trade-off; 0.3 is dominated by 0.2 here.
  return (
    _runs("pgd_at_0.1", "pgd_at", [(0.95, 0.30), (0.97, 0.32), (0.96, 0.31)], train_eps=0.1)
    + _runs("pgd_at_0.2", "pgd_at", [(0.90, 0.50), (0.92, 0.52), (0.91, 0.51)], train_eps=0.2)
    + _runs("pgd_at_0.3", "pgd_at", [(0.80, 0.45), (0.82, 0.47)], train_eps=0.3)
    + _runs(
      "iaat_a",
      "iaat",
      [(0.935, 0.50), (0.945, 0.52), (0.94, 0.51)],
      eps_quantiles=[0.0, 0.1, 0.2, 0.3, 0.4],
    )
    + _runs("iaat_b", "iaat", [(0.85, 0.40), (0.87, 0.42)])
    + _runs("iaat_c", "iaat", [(0.99, 0.10), (0.99, 0.12)])
    + _runs("iaat_d", "iaat", [(0.88, 0.49), (0.89, 0.515)])
  )


def test_summary_frontier_and_structured_verdicts_have_known_values():
  analysis = frontier.analyse(_example())
  by = {s["setting"]: s for s in analysis["settings"]}
  assert by["pgd_at_0.1"]["clean_mean"] == pytest.approx(0.96)
  assert by["pgd_at_0.1"]["clean_std"] == pytest.approx(0.01)
  assert by["pgd_at_0.1"]["clean_ci"] == pytest.approx(
    list(scipy_stats.t.interval(0.95, 2, loc=0.96, scale=0.01 / math.sqrt(3)))
  )
  assert analysis["uniform_frontier"] == ["pgd_at_0.2", "pgd_at_0.1"]
  assert not by["pgd_at_0.3"]["on_frontier"] and by["pgd_at_0.1"]["on_frontier"]
  assert not by["pgd_at_0.2"]["on_frontier"]  # iaat_a: more clean, same AA.
  # iaat_a at clean 0.94: w = 0.6 between 0.91 (AA 0.51) and 0.96 (AA 0.31):
  # 0.51 - 0.6 * 0.2 = 0.39, so 0.12 above. Paired by seed: per-seed gaps
  # with slope m = -4 (both coordinates of all three settings).
  a = by["iaat_a"]
  assert a["frontier_basis"] == "interpolated"
  assert a["compared_with"] == ["pgd_at_0.2", "pgd_at_0.1"]
  assert a["frontier_autoattack"] == pytest.approx(0.39)
  assert a["gap"] == pytest.approx(0.12)
  w = 0.6
  per_seed = [
    (0.50 + 4 * 0.935) - (1 - w) * (0.50 + 4 * 0.90) - w * (0.30 + 4 * 0.95),
    (0.52 + 4 * 0.945) - (1 - w) * (0.52 + 4 * 0.92) - w * (0.32 + 4 * 0.97),
    (0.51 + 4 * 0.94) - (1 - w) * (0.51 + 4 * 0.91) - w * (0.31 + 4 * 0.96),
  ]
  assert np.mean(per_seed) == pytest.approx(0.12)
  se = np.std(per_seed, ddof=1) / math.sqrt(3)
  assert a["gap_se"] == pytest.approx(se) and a["gap_df"] == 2
  assert a["gap_ci"] == pytest.approx([0.12 - 4.303 * se, 0.12 + 4.303 * se], abs=1e-4)
  assert a["verdict"] == "above" and a["gap_ci"][0] > 0
  # Two seeds of the same settings: t(1) = 12.7, and the seeds cannot tell.
  two = frontier.analyse([r for r in _example() if r["seed"] < 2])
  assert {s["setting"]: s for s in two["settings"]}["iaat_a"]["verdict"] == "cannot_tell"
  # iaat_d: less clean accuracy than the frontier, and less AutoAttack than
  # its lowest-clean point, where the seeds cannot show it below: not
  # comparable (never "above" against a point with more clean accuracy).
  d = by["iaat_d"]
  assert d["frontier_basis"] == "higher_clean_point"
  assert d["gap"] == pytest.approx(0.5025 - 0.51)
  assert d["verdict"] == "not_comparable" and "larger than 0.2" in d["reason"]
  # iaat_b: below the lowest-clean point on both seeds by 0.1: below.
  assert by["iaat_b"]["verdict"] == "below" and by["iaat_b"]["gap"] == pytest.approx(-0.1)
  # iaat_c: more clean accuracy than every PGD-AT radius: nothing to compare with.
  c = by["iaat_c"]
  assert c["gap"] is None and c["verdict"] == "not_comparable"
  assert "smaller than 0.1" in c["reason"]
  text = "\n".join(analysis["verdict"])
  assert (
    "iaat_a (learns on 3/3 seeds): clean 94.0 +- 0.5, AutoAttack 51.0 +- 1.0; "
    "at the same clean accuracy, between pgd_at_0.2 (learns on 3/3), pgd_at_0.1 "
    "(learns on 3/3): gap +12.0 AutoAttack points, 95% interval [+7.0, +17.0]"
  ) in text
  assert "above uniform PGD-AT's frontier: the seeds tell" in text
  assert "Student's t" in text
  table = frontier.table_markdown(analysis["settings"])
  assert "| iaat_a | 3/3 | 94.0 +- 0.5 | 51.0 +- 1.0 | yes | +12.0 [+7.0, +17.0] |" in table
  assert "| above |" in table
  assert json.loads(json.dumps(analysis)) == analysis  # frontier.json holds it all.


def test_the_seeds_cannot_tell_a_small_gap():
  runs = (
    _runs("pgd_at_0.1", "pgd_at", [(0.95, 0.30), (0.97, 0.40)])
    + _runs("pgd_at_0.2", "pgd_at", [(0.90, 0.50), (0.92, 0.60)])
    + _runs("iaat", "iaat", [(0.935, 0.38), (0.945, 0.50)])
  )
  analysis = frontier.analyse(runs)
  assert analysis["settings"][-1]["verdict"] == "cannot_tell"
  assert "the seeds cannot tell" in analysis["verdict"][-1]


def test_seeds_that_fail_to_learn_are_reliability_not_accuracy(tmp_path):
  """PGD-AT at 0.25 fails on seed 1: its point is the mean over the seeds
  it learns on, "2/3" beside it, and IAAT is compared with it there."""
  runs = (
    _runs("pgd_at_0.2", "pgd_at", [(0.99, 0.62), (0.98, 0.64), (0.99, 0.63)])
    + _runs("pgd_at_0.25", "pgd_at", [(0.97, 0.68), (0.10, 0.10), (0.98, 0.70)])
    + _runs("pgd_at_0.3", "pgd_at", [(0.088, 0.086)] * 3)
    + _runs("iaat", "iaat", [(0.978, 0.66), (0.981, 0.68), (0.982, 0.67)])
  )
  analysis = frontier.analyse(runs)
  by = {s["setting"]: s for s in analysis["settings"]}
  u = by["pgd_at_0.25"]
  assert u["learned_seeds"] == [0, 2] and u["learns"] == "2/3" and u["reliability"] == 2 / 3
  assert u["clean_mean"] == pytest.approx(0.975)
  assert u["autoattack_mean"] == pytest.approx(0.69)
  assert u["autoattack_std"] == pytest.approx(0.01 * math.sqrt(2))
  assert [p["learned"] for p in u["per_seed"]] == [True, False, True]
  # A run at chance (8.8% clean, 8.6% AutoAttack) never learns, though its
  # AutoAttack accuracy is below its clean accuracy.
  assert by["pgd_at_0.3"]["learns"] == "0/3" and by["pgd_at_0.3"]["clean_mean"] is None
  assert not by["pgd_at_0.3"]["on_frontier"]
  assert analysis["uniform_frontier"] == ["pgd_at_0.25", "pgd_at_0.2"]
  i = by["iaat"]
  assert i["compared_with"] == ["pgd_at_0.25", "pgd_at_0.2"]
  # Different learned seeds: Welch, not paired (df not n - 1).
  assert i["gap_df"] != 2
  text = "\n".join(analysis["verdict"])
  assert "pgd_at_0.25 (learns on 2/3)" in text and "iaat (learns on 3/3 seeds)" in text
  assert "pgd_at_0.3 0/3" in text
  table = frontier.table_markdown(analysis["settings"])
  assert "| pgd_at_0.25 | 2/3 | 97.5 +- 0.7 | 69.0 +- 1.4 |" in table
  assert "1: 10.0 / 10.0 failed" in table and "fails on every seed" in table
  path = frontier.plot_frontier(analysis, str(tmp_path / "f.png"), aa_eps=0.2)
  assert os.path.getsize(path) > 10_000


def test_learns_is_judged_against_chance():
  run = lambda clean, aa=0.0, chance=0.1, n=359: {
    "clean": clean,
    "autoattack": aa,
    "chance": chance,
    "n_examples": n,
  }
  assert frontier.learns(run(0.97, 0.97))  # Robust, not constant.
  assert not frontier.learns(run(0.088, 0.086))  # Below chance, AA < clean.
  assert not frontier.learns(run(0.106, 0.0, chance=0.106))  # The majority class.
  # Above chance by more than luck on 359 images allows (p < 0.001) ...
  assert frontier.learns(run(0.17))
  # ... but not by less; on 50 images the same 14% is luck.
  assert not frontier.learns(run(0.12)) and not frontier.learns(run(0.14, n=50))
  with pytest.raises(ValueError, match="chance"):
    frontier.learns({"clean": 0.9, "autoattack": 0.5})


# -- calibration: how often the verdict claims what is not there --------------

# PGD-AT's true frontier on digits (clean, AutoAttack) and four adaptive
# settings whose true points lie on it; seed noise 0.6 clean and 3
# AutoAttack points, as on digits (issue 32).
_UNIFORM_TRUTH = [(0.992, 0.25), (0.991, 0.47), (0.987, 0.63), (0.974, 0.68), (0.955, 0.71)]
_ADAPTIVE_CLEAN = [0.980, 0.975, 0.985, 0.965]


def _on_truth(c):
  pts = sorted(_UNIFORM_TRUTH)
  for (c0, a0), (c1, a1) in zip(pts, pts[1:]):
    if c0 <= c <= c1:
      return a0 + (a1 - a0) * (c - c0) / (c1 - c0)
  raise ValueError(c)


def _simulate(rng, seeds, advantage):
  runs = []
  points = [(f"u{k}", "pgd_at", c, a) for k, (c, a) in enumerate(_UNIFORM_TRUTH)] + [
    (f"a{k}", "iaat", c, _on_truth(c) + advantage) for k, c in enumerate(_ADAPTIVE_CLEAN)
  ]
  for name, method, c, a in points:
    noise = rng.standard_normal((seeds, 2)) * [0.006, 0.03]
    runs += _runs(name, method, [(min(1.0, c + dc), a + da) for dc, da in noise])
  return [s["verdict"] for s in frontier.analyse(runs)["settings"] if s["method"] == "iaat"]


@pytest.mark.parametrize("seeds", [3, 5])
def test_no_advantage_is_called_above_at_most_5_percent_of_the_time(seeds):
  rng = np.random.default_rng(seeds)
  verdicts = [v for _ in range(150) for v in _simulate(rng, seeds, 0.0)]
  above = verdicts.count("above") / len(verdicts)
  assert above <= 0.05, above  # Measured: 1.6% (3 seeds), 1.9% (5 seeds).
  assert set(verdicts) <= set(frontier.VERDICTS)


def test_a_true_advantage_is_found_most_of_the_time():
  """8 AutoAttack points above the frontier (about 4 standard errors of the
  gap at 5 seeds): "above" most of the time, "below" never."""
  rng = np.random.default_rng(7)
  verdicts = [v for _ in range(100) for v in _simulate(rng, 5, 0.08)]
  assert verdicts.count("above") / len(verdicts) >= 0.6  # Measured: 71%.
  assert verdicts.count("below") == 0


def test_settings_of_names_and_refusals():
  options = command.FrontierConfig(
    experiment="quickstart",
    out_dir="x",
    pgd_at_eps=(0.1, 8 / 255),
    iaat=("eps=0.3 gamma=0.1", "method=iaat_cheap"),
  )
  names = [s.name for s in command.settings_of(options)]
  # Uniform radii ramp over the experiment's warmup (5 epochs in quickstart).
  assert names == [
    "pgd_at_eps0.1_ramp5",
    "pgd_at_eps0.03137_ramp5",
    "iaat_eps0.3_gamma0.1",
    "iaat_cheap",
  ]
  assert command.settings_of(options)[0].flags == (
    "--method=pgd_at",
    "--eps=0.1",
    "--eps_ramp_epochs=5",
  )
  longer = dataclasses.replace(options, train_args=("--warmup_epochs=8",))
  assert command.settings_of(longer)[0].name == "pgd_at_eps0.1_ramp8"
  plain = dataclasses.replace(options, uniform_ramp=False)
  assert [s.name for s in command.settings_of(plain)][:2] == ["pgd_at_eps0.1", "pgd_at_eps0.03137"]
  for bad, message in (("eps", "flag=value"), ("method=pgd_at", "not adaptive")):
    with pytest.raises(command.FrontierError, match=message):
      command.settings_of(
        command.FrontierConfig(experiment="quickstart", out_dir="x", pgd_at_eps=(0.1,), iaat=(bad,))
      )


@pytest.mark.slow
def test_command_end_to_end_and_resumed(tmp_path):
  out = tmp_path / "frontier"
  args = [
    sys.executable,
    "-m",
    "iaat_tf.frontier",
    "--experiment=quickstart",
    "--pgd_at_eps=0.2",
    "--iaat=eps=0.3 gamma=0.1",
    "--seeds=0",
    "--jobs=2",
    "--train_args=--epochs=2 --warmup_epochs=1 --val_examples=32 "
    "--pgd_steps=1 --max_train_examples=256",
    "--aa_max_examples=64",
    "--aa_apgd_iters=3",
    "--aa_targets=1",
    "--aa_fab_iters=3",
    "--aa_square_queries=5",
    "--nocurve",
    f"--out_dir={out}",
  ]
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
  first = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
  assert first.returncode == 0, first.stdout + first.stderr
  with open(out / "frontier.json") as f:
    result = json.load(f)
  settings = {s["setting"]: s for s in result["settings"]}
  # The uniform radius ramps over the experiment's warmup (1 epoch here).
  assert set(settings) == {"pgd_at_eps0.2_ramp1", "iaat_eps0.3_gamma0.1"}
  assert settings["pgd_at_eps0.2_ramp1"]["flags"] == [
    "--method=pgd_at",
    "--eps=0.2",
    "--eps_ramp_epochs=1",
  ]
  for s in settings.values():
    assert {
      "method",
      "flags",
      "seeds",
      "learns",
      "clean_mean",
      "clean_std",
      "autoattack_mean",
      "autoattack_std",
      "on_frontier",
      "per_seed",
    } <= set(s)
    (run,) = s["per_seed"]
    assert s["seeds"] == [0] and 0 <= run["autoattack"] <= run["clean"] <= 1
  iaat = settings["iaat_eps0.3_gamma0.1"]
  assert iaat["verdict"] in frontier.VERDICTS
  assert iaat["verdict"] != "above"  # One seed: no interval, nothing told.
  assert 0 < result["runs"][0]["chance"] < 0.5 and result["runs"][0]["n_examples"] == 64
  assert settings["iaat_eps0.3_gamma0.1"]["flags"] == ["--method=iaat", "--eps=0.3", "--gamma=0.1"]
  assert len(settings["iaat_eps0.3_gamma0.1"]["eps_quantiles"]) == 5
  assert (out / "frontier.png").stat().st_size > 10_000
  assert "AutoAttack" in (out / "frontier.md").read_text()
  # Its runs are ordinary runs: results.json with an AutoAttack.
  run = out / "runs" / "pgd_at_eps0.2_ramp1_seed0"
  assert json.loads((run / "results.json").read_text())["autoattack"]["n_examples"] == 64
  # Rerun: nothing is retrained or re-attacked, the same numbers come back.
  again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
  assert again.returncode == 0, again.stderr
  with open(out / "frontier.json") as f:
    assert json.load(f)["settings"] == result["settings"]
  log = (out / "logs" / "pgd_at_eps0.2_ramp1_seed0.log").read_text()
  assert log.count("-m iaat_tf.evaluate") == 1 and "finished" in log
  # The radius dynamics of its IAAT runs (experiments/frontier_digits/).
  dynamics = subprocess.run(
    [sys.executable, "-m", "experiments.frontier_digits.radius_dynamics", f"--out_dir={out}"],
    capture_output=True,
    text=True,
    cwd=REPO,
    env=env,
    timeout=300,
  )
  assert dynamics.returncode == 0, dynamics.stderr
  radii = json.loads((out / "radius_dynamics.json").read_text())
  gamma = radii["iaat_eps0.3_gamma0.1"]
  assert gamma["seeds"] == 1 and len(gamma["curve"]) == 2 and gamma["gamma"] == 0.1
  table = np.load(out / "runs" / "iaat_eps0.3_gamma0.1_seed0" / "eps_table.npy")
  assert gamma["end"]["at_zero"] == pytest.approx(float(np.mean(table == 0)))
  assert gamma["end"]["below_eval_eps"] == pytest.approx(float(np.mean(table < 0.2 - 1e-6)))
  assert (out / "radius_dynamics.png").stat().st_size > 10_000
  bad = subprocess.run(
    args[:4] + ["--out_dir=x"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
  )
  assert bad.returncode == 2 and "--pgd_at_eps" in bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1
