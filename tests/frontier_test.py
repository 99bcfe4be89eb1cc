"""The frontier experiment: its analysis (reports/frontier.py) on numbers with
known answers, and the command end to end on tiny digits runs (resumed)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from iaat_tf import frontier as command
from iaat_tf.reports import frontier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _runs(setting, method, pairs, **extra):
  return [{"setting": setting, "method": method, "flags": [f"--method={method}"],
           "seed": i, "clean": c, "autoattack": a, **extra}
          for i, (c, a) in enumerate(pairs)]


def _example():
  # PGD-AT: a clean/robust trade-off; 0.3 is dominated by 0.2 here.
  return (_runs("pgd_at_0.1", "pgd_at", [(0.95, 0.30), (0.97, 0.32)], train_eps=0.1)
          + _runs("pgd_at_0.2", "pgd_at", [(0.90, 0.50), (0.92, 0.52)], train_eps=0.2)
          + _runs("pgd_at_0.3", "pgd_at", [(0.80, 0.45), (0.82, 0.47)], train_eps=0.3)
          + _runs("iaat_a", "iaat", [(0.935, 0.50), (0.945, 0.52)],
                  eps_quantiles=[0.0, 0.1, 0.2, 0.3, 0.4])
          + _runs("iaat_b", "iaat", [(0.85, 0.40), (0.87, 0.42)])
          + _runs("iaat_c", "iaat", [(0.99, 0.10), (0.99, 0.12)]))


def test_summary_frontier_and_gaps_have_known_values():
  analysis = frontier.analyse(_example())
  by = {s["setting"]: s for s in analysis["settings"]}
  assert by["pgd_at_0.1"]["clean_mean"] == pytest.approx(0.96)
  assert by["pgd_at_0.1"]["clean_std"] == pytest.approx(math.sqrt(2) * 0.01)
  assert analysis["uniform_frontier"] == ["pgd_at_0.2", "pgd_at_0.1"]
  assert not by["pgd_at_0.3"]["on_frontier"] and by["pgd_at_0.1"]["on_frontier"]
  # iaat_a has more clean accuracy at the same AutoAttack accuracy.
  assert not by["pgd_at_0.2"]["on_frontier"]
  # iaat_a at clean 0.94: halfway between 0.91 (AA 0.51) and 0.96 (AA 0.31)
  # on PGD-AT's frontier: 0.51 - 0.6 * 0.2 = 0.39, so 0.12 above it.
  a = by["iaat_a"]
  assert a["frontier_basis"] == "interpolated"
  assert a["frontier_autoattack"] == pytest.approx(0.39)
  assert a["gap"] == pytest.approx(0.12)
  sem = 0.01 * math.sqrt(2) / math.sqrt(2)  # std / sqrt(n) of every setting.
  assert a["gap_se"] == pytest.approx(sem * math.sqrt(1 + 0.4 ** 2 + 0.6 ** 2))
  assert a["on_frontier"] and a["eps_quantiles"] == [0.0, 0.1, 0.2, 0.3, 0.4]
  # Below the frontier's clean range: compared with its lowest-clean point.
  assert by["iaat_b"]["frontier_basis"] == "bound"
  assert by["iaat_b"]["gap"] == pytest.approx(0.41 - 0.51)
  # Above it: not compared (no extrapolation).
  assert by["iaat_c"]["gap"] is None
  text = "\n".join(analysis["verdict"])
  assert "12.0 AutoAttack points above" in text and "the seeds tell" in text
  assert "10.0 AutoAttack points below" in text and "higher clean accuracy" in text
  assert "add smaller PGD-AT radii" in text
  table = frontier.table_markdown(analysis["settings"])
  assert "| iaat_a | 2 | 94.0 +- 0.7 | 51.0 +- 1.4 | yes | +12.0 +- 1.2 |" in table


def test_the_seeds_cannot_tell_a_small_gap():
  runs = (_runs("pgd_at_0.1", "pgd_at", [(0.95, 0.30), (0.97, 0.40)])
          + _runs("pgd_at_0.2", "pgd_at", [(0.90, 0.50), (0.92, 0.60)])
          + _runs("iaat", "iaat", [(0.935, 0.38), (0.945, 0.50)]))
  analysis = frontier.analyse(runs)
  assert "the seeds cannot tell" in analysis["verdict"][-1]


def test_a_radius_that_learns_on_some_seeds_is_reported_where_it_learns(tmp_path):
  """PGD-AT at 0.25 fails on seed 1 (a constant prediction: clean = AA); its
  means over the other seeds are reported, and IAAT is compared with them."""
  runs = (_runs("pgd_at_0.2", "pgd_at", [(0.99, 0.62), (0.98, 0.64), (0.99, 0.63)])
          + _runs("pgd_at_0.25", "pgd_at", [(0.97, 0.68), (0.10, 0.10), (0.98, 0.70)])
          + _runs("iaat", "iaat", [(0.975, 0.66), (0.975, 0.68), (0.975, 0.67)]))
  analysis = frontier.analyse(runs)
  by = {s["setting"]: s for s in analysis["settings"]}
  u = by["pgd_at_0.25"]
  assert u["learned_seeds"] == [0, 2] and by["pgd_at_0.2"]["learned_seeds"] == [0, 1, 2]
  assert u["clean_mean_learned"] == pytest.approx(0.975)
  assert u["autoattack_mean_learned"] == pytest.approx(0.69)
  assert u["autoattack_std_learned"] == pytest.approx(0.01 * math.sqrt(2))
  assert "clean_mean_learned" not in by["pgd_at_0.2"]
  text = "\n".join(analysis["verdict"])
  assert "pgd_at_0.25 fails to learn on 1 of 3 seeds" in text
  # IAAT: 0.67 vs 0.69 where 0.25 learns; se = sqrt((0.01/sqrt3)^2 + (0.01414/sqrt2)^2).
  se = math.sqrt((0.01 / math.sqrt(3)) ** 2 + 0.01 ** 2)
  assert (f"iaat against pgd_at_0.25 where it learns: 2.0 AutoAttack points below "
          f"at 0.0 more clean accuracy; within 2 standard errors ({100 * se:.1f})") in text
  assert "pgd_at_0.25 (learns on 2 of 3 seeds: 97.5 / 69.0)" in frontier.table_markdown(
      analysis["settings"])
  assert frontier.learns({"clean": 0.97, "autoattack": 0.97})  # Robust, not constant.
  assert not frontier.learns({"clean": 0.1, "autoattack": 0.1})
  path = frontier.plot_frontier(analysis, str(tmp_path / "f.png"), aa_eps=0.2)
  assert os.path.getsize(path) > 10_000


def test_settings_of_names_and_refusals():
  options = command.FrontierOptions(
      experiment="quickstart", out_dir="x", pgd_at_eps=(0.1, 8 / 255),
      iaat=("eps=0.3 gamma=0.1", "method=iaat_cheap"))
  names = [s.name for s in command.settings_of(options)]
  assert names == ["pgd_at_eps0.1", "pgd_at_eps0.03137", "iaat_eps0.3_gamma0.1",
                   "iaat_cheap"]
  for bad, message in (("eps", "flag=value"), ("method=pgd_at", "not adaptive")):
    with pytest.raises(command.FrontierError, match=message):
      command.settings_of(command.FrontierOptions("q", "x", (0.1,), (bad,)))


@pytest.mark.slow
def test_command_end_to_end_and_resumed(tmp_path):
  out = tmp_path / "frontier"
  args = [sys.executable, "-m", "iaat_tf.frontier", "--experiment=quickstart",
          "--pgd_at_eps=0.2", "--iaat=eps=0.3 gamma=0.1", "--seeds=0", "--jobs=2",
          "--train_args=--epochs=2 --warmup_epochs=1 --val_examples=32 "
          "--pgd_steps=1 --max_train_examples=256",
          "--aa_max_examples=32", "--aa_apgd_iters=3", "--aa_targets=1",
          "--aa_fab_iters=3", "--aa_square_queries=5", "--nocurve",
          f"--out_dir={out}"]
  env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
  first = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=900)
  assert first.returncode == 0, first.stdout + first.stderr
  with open(out / "frontier.json") as f:
    result = json.load(f)
  settings = {s["setting"]: s for s in result["settings"]}
  assert set(settings) == {"pgd_at_eps0.2", "iaat_eps0.3_gamma0.1"}
  for s in settings.values():
    assert {"method", "flags", "seeds", "clean_mean", "clean_std", "autoattack_mean",
            "autoattack_std", "on_frontier"} <= set(s)
    assert s["seeds"] == [0] and 0 <= s["autoattack_mean"] <= s["clean_mean"] <= 1
  assert settings["iaat_eps0.3_gamma0.1"]["flags"] == [
      "--method=iaat", "--eps=0.3", "--gamma=0.1"]
  assert len(settings["iaat_eps0.3_gamma0.1"]["eps_quantiles"]) == 5
  assert (out / "frontier.png").stat().st_size > 10_000
  assert "AutoAttack" in (out / "frontier.md").read_text()
  # Its runs are ordinary runs: results.json with an AutoAttack.
  run = out / "runs" / "pgd_at_eps0.2_seed0"
  assert json.loads((run / "results.json").read_text())["autoattack"]["n_examples"] == 32
  # Rerun: nothing is retrained or re-attacked, the same numbers come back.
  again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=900)
  assert again.returncode == 0, again.stderr
  with open(out / "frontier.json") as f:
    assert json.load(f)["settings"] == result["settings"]
  log = (out / "logs" / "pgd_at_eps0.2_seed0.log").read_text()
  assert log.count("-m iaat_tf.evaluate") == 1 and "finished" in log
  # The radius dynamics of its IAAT runs (experiments/frontier_digits/).
  dynamics = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "frontier_digits",
                                    "radius_dynamics.py"), f"--out_dir={out}"],
      capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
  assert dynamics.returncode == 0, dynamics.stderr
  radii = json.loads((out / "radius_dynamics.json").read_text())
  gamma = radii["iaat_eps0.3_gamma0.1"]
  assert gamma["seeds"] == 1 and len(gamma["curve"]) == 2 and gamma["gamma"] == 0.1
  table = np.load(out / "runs" / "iaat_eps0.3_gamma0.1_seed0" / "eps_table.npy")
  assert gamma["end"]["at_zero"] == pytest.approx(float(np.mean(table == 0)))
  assert gamma["end"]["below_eval_eps"] == pytest.approx(float(np.mean(table < 0.2 - 1e-6)))
  assert (out / "radius_dynamics.png").stat().st_size > 10_000
  bad = subprocess.run(args[:4] + ["--out_dir=x"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
  assert bad.returncode == 2 and "--pgd_at_eps" in bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1
