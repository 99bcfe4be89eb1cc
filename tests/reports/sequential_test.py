"""reports/sequential.py: --seeds=auto's rounds, its looks' levels, what it stops on.

The worlds are reports/calibration.py's (runs drawn when the design asks);
the design's error rates in the steep world are tests/reports/calibration_test.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from iaat_tf.reports import calibration, frontier, sequential

GENTLE = calibration.WORLDS["gentle"]


def _world(rng, advantage, world=GENTLE):
  """(settings, run_round, asked): the world's settings, and their runs drawn on request."""
  asked = []

  def run_round(pairs):
    asked.extend(pairs)
    return [
      r for name, seed in pairs for r in calibration.draw(rng, world, name, [seed], advantage)
    ]

  settings = [
    {"name": n, "method": "iaat" if n.startswith("a") else "pgd_at"}
    for n in calibration.names(world)
  ]
  return settings, run_round, asked


def _verdicts(analysis):
  return [s["verdict"] for s in analysis["settings"] if s["method"] == "iaat"]


def test_levels_are_bonferroni_over_the_looks():
  """Half the 5% at the last look, the other half shared by the earlier ones."""
  assert sequential.looks(5) == 3
  assert sequential.levels(5) == pytest.approx((1 - 0.025 / 2, 1 - 0.025))
  assert sequential.levels(8) == pytest.approx((1 - 0.025 / 5, 1 - 0.025))
  assert sequential.levels(3) == pytest.approx((0.95, 0.95))
  with pytest.raises(ValueError, match="--max_seeds=2 must be >= 3"):
    sequential.decide([], lambda pairs: [], max_seeds=2)


def test_the_correction_holds_what_looking_again_would_inflate():
  """No advantage, up to 6 looks: without the correction every look at 95%
  calls `above` or `below` more often than with it (measured 5.0% / 3.5%
  against 0.4% / 0.6%)."""
  corrected = calibration.simulate_sequential(GENTLE, 8, 100, seed=11).rates()
  original = sequential.levels
  sequential.levels = lambda *a, **k: (0.95, 0.95)
  try:
    naive = calibration.simulate_sequential(GENTLE, 8, 100, seed=11).rates()
  finally:
    sequential.levels = original
  assert corrected["above"] <= 0.02 and corrected["below"] <= 0.02, corrected
  assert naive["above"] + naive["below"] > 2 * (corrected["above"] + corrected["below"]), naive


def test_a_true_advantage_is_found_and_never_called_below():
  """8 AutoAttack points above the frontier, up to 8 seeds: found most of the
  time (measured 74%; 8 fixed seeds: 87% on 72 runs), never called below,
  on fewer runs than 8 fixed seeds for all 9 settings."""
  tally = calibration.simulate_sequential(GENTLE, 8, 60, seed=5, advantage=0.08)
  rates = tally.rates()
  assert rates["above"] >= 0.6 and rates["below"] == 0, rates
  assert rates["runs"] < 9 * 8


def test_each_setting_says_how_many_seeds_it_got_why_it_stopped_and_which_look():
  rng = np.random.default_rng(3)
  settings, run_round, asked = _world(rng, 0.0)
  analysis = sequential.decide(settings, run_round, max_seeds=5, power_sims=50)
  early, final = sequential.levels(5)
  for s in analysis["settings"]:
    assert s["seeds_planned"] <= 5 and len(s["seeds"]) == s["seeds_planned"]
    if s["method"] == "iaat":
      assert s["stopped"] and str(s["seeds_planned"]) in s["stopped"]
      last = s["seeds_planned"] == 5
      assert s["gap_level"] == pytest.approx(final if last else early)
      look = s["look"]
      assert look["seeds"][s["setting"]] == s["seeds_planned"]
      assert set(look["seeds"]) >= set(s["compared_with"])
      assert look["means"]["clean_mean"] == pytest.approx(s["clean_mean"])
      assert "detectable_gap" in s  # Its power, at the look where it stopped.
  # The looks ran no power simulations; the rule names the ones that did.
  assert "by 50 simulated experiments" in analysis["rules"]["detectable_gap"]
  line = next(l for l in analysis["verdict"] if l.startswith("a1"))
  assert "% interval" in line and f"numbers of look {analysis['settings'][6]['look']['round']}"
  assert "numbers of look" in line and line.endswith(").")
  assert analysis["sequential"]["runs"] == len(asked) <= 9 * 5
  assert "97.5% at it" in analysis["sequential"]["correction"]
  assert set(_verdicts(analysis)) <= set(frontier.VERDICTS)


def test_a_setting_with_a_radius_above_it_in_the_means_keeps_its_seeds():
  """Not comparable (less clean accuracy than every frontier point), but a
  radius has more of both in the means: more seeds may still show it below,
  so it is not stopped at the first look (iaat_tf 0.6 stopped it)."""
  world = calibration.World(
    "below_the_end",
    "",
    ((0.985, 0.60), (0.975, 0.70)),
    (0.93,),
  )
  rng = np.random.default_rng(0)
  settings, run_round, asked = _world(rng, -0.015, world)
  analysis = sequential.decide(settings, run_round, max_seeds=6, power_sims=0)
  s = next(x for x in analysis["settings"] if x["setting"] == "a0")
  assert s["dominated_by"] and s["dominated_by"][0]["setting"] == "u1"
  assert s["seeds_planned"] > 3, s["stopped"]
  # Without a radius above it in the means, it stops at once.
  settings, run_round, asked = _world(np.random.default_rng(0), 0.05, world)
  analysis = sequential.decide(settings, run_round, max_seeds=6, power_sims=0)
  s = next(x for x in analysis["settings"] if x["setting"] == "a0")
  assert s["verdict"] == "not_comparable" and s["seeds_planned"] == 3
  assert s["stopped"] == "not comparable at 3 seeds"


def test_a_run_that_fails_is_retried_and_the_rounds_end():
  rng = np.random.default_rng(4)
  settings, run_round, _ = _world(rng, 0.0)
  failed = set()

  def flaky(pairs):
    runs = run_round(pairs)
    keep = []
    for r in runs:
      key = (r["setting"], r["seed"])
      if key == ("u2", 1) and key not in failed:
        failed.add(key)  # Fails once, then works.
        continue
      keep.append(r)
    return keep

  analysis = sequential.decide(settings, flaky, max_seeds=4)
  assert failed and analysis["sequential"]["rounds"] >= 2
  u2 = next(s for s in analysis["settings"] if s["setting"] == "u2")
  assert 1 in u2["seeds"]


def test_the_frontier_command_runs_the_sequential_design(
  tmp_path, monkeypatch, frontier_run_record
):
  """iaat-frontier --seeds=auto: rounds of runs (here simulated), each
  adaptive setting's seeds and why it stopped in frontier.json and .md."""
  from iaat_tf.runs import frontier_config, frontier_run  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(9)
  truth = {
    "pgd_at_eps0.1": (0.992, 0.47),
    "pgd_at_eps0.2": (0.987, 0.63),
    "pgd_at_eps0.3": (0.955, 0.71),
    "iaat_eps0.3": (0.975, calibration.frontier_at(GENTLE, 0.975) + 0.1),
  }
  trained = []

  def fake(setting, seed, options, experiment_path, env=None):
    trained.append((setting.name, seed))
    c, a = truth[setting.name]
    dc, da = rng.standard_normal(2) * [0.006, 0.03]
    return frontier_run_record(setting, seed, c + dc, a + da)

  monkeypatch.setattr(frontier_run, "train_and_evaluate", fake)
  options = frontier_config.FrontierConfig(
    experiment="quickstart",
    out_dir=str(tmp_path),
    pgd_at_eps=(0.1, 0.2, 0.3),
    iaat=("eps=0.3",),
    auto_seeds=True,
    max_seeds=6,
    uniform_ramp=False,
  )
  lines = []
  payload = frontier_run.frontier(options, log=lines.append)
  assert payload["seeds"] == "auto" and payload["sequential"]["runs"] == len(trained)
  assert len(set(trained)) == len(trained) <= 4 * 6  # No run twice; under the cap.
  iaat = next(s for s in payload["settings"] if s["setting"] == "iaat_eps0.3")
  assert iaat["stopped"] and iaat["verdict"] in frontier.VERDICTS
  assert any("round 1:" in l for l in lines)
  md = (tmp_path / "frontier.md").read_text()
  assert "--seeds=auto" in md and "Bonferroni" in md and iaat["stopped"] in md
  with pytest.raises(frontier_config.FrontierError, match="or be auto"):
    frontier_config.FrontierConfig(experiment="x", out_dir="y", seeds=())


def test_seeds_auto_on_the_command_line(tmp_path):
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  args = [
    sys.executable,
    "-m",
    "iaat_tf.frontier",
    "--experiment=quickstart",
    f"--out_dir={tmp_path}",
    "--pgd_at_eps=0.1",
    "--seeds=auto",
    "--max_seeds=2",
  ]
  bad = subprocess.run(
    args,
    capture_output=True,
    text=True,
    cwd=tmp_path,
    timeout=120,
    env={**os.environ, "PYTHONPATH": repo},
  )
  assert bad.returncode == 2 and bad.stderr.strip() == (
    "iaat_tf.frontier: error: --max_seeds=2 must be >= 3"
  )
