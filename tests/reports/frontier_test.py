"""The frontier experiment: its analysis (reports/frontier.py) on numbers with
known answers, and the command end to end on tiny digits runs (resumed).

How often the verdict is wrong, in a family of simulated worlds, is
tests/reports/calibration_test.py."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from iaat_tf.runs import frontier_config
from iaat_tf.reports import calibration, frontier, frontier_plot, frontier_words, power

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
  analysis = frontier.analyse(_example(), power_sims=0)
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
  # Its clean accuracy is surely inside that segment (every other piece is
  # ruled out), and the segment's AutoAttack range does not narrow the line's
  # interval: the interval is the line's.
  assert [p["piece"] for p in a["pieces"]] == ["segment"]
  assert a["gap_ci"] == pytest.approx([0.12 - 4.303 * se, 0.12 + 4.303 * se], abs=1e-4)
  assert a["verdict"] == "above" and a["gap_ci"][0] > 0
  # Two seeds of the same settings: t(1) = 12.7, and the seeds cannot tell.
  two = frontier.analyse([r for r in _example() if r["seed"] < 2], power_sims=0)
  assert {s["setting"]: s for s in two["settings"]}["iaat_a"]["verdict"] == "cannot_tell"
  # iaat_d: less clean accuracy than the frontier and not below its
  # lowest-clean point: not comparable, and no gap is printed for it.
  d = by["iaat_d"]
  assert d["verdict"] == "not_comparable" and "larger than 0.2" in d["reason"]
  assert d["gap"] is None and d["gap_ci"] is None
  # iaat_b: below the lowest-clean point on both seeds by 0.1, and surely less
  # clean: below.
  assert by["iaat_b"]["verdict"] == "below" and by["iaat_b"]["gap"] == pytest.approx(-0.1)
  assert [p["piece"] for p in by["iaat_b"]["pieces"]] == ["flat"]
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
  assert (
    "above uniform PGD-AT's frontier, the line joining the radii tried: the seeds tell "
    "(the control: a PGD-AT radius between pgd_at_0.2 and pgd_at_0.1)."
  ) in text
  assert "Student's t" in text and frontier.FAILURE_RULE in text
  line_d = next(l for l in analysis["verdict"] if l.startswith("iaat_d"))
  assert "gap" not in line_d and "interval" not in line_d and "not comparable" in line_d
  table = frontier_words.table_markdown(analysis["settings"])
  assert "| iaat_a | 3/3 | 94.0 +- 0.5 | 51.0 +- 1.0 | yes | +12.0 [+7.0, +17.0] |" in table
  assert "| above |" in table and "(95% interval)" in table
  assert "| iaat_d | 2/2 | 88.5 +- 0.7 | 50.2 +- 1.8 |  |  |  | not comparable |" in table
  assert set(analysis["rules"]) == {"failed_run", "verdict", "detectable_gap"}
  assert json.loads(json.dumps(analysis)) == analysis  # frontier.json holds it all.


def test_the_seeds_cannot_tell_a_small_gap():
  runs = (
    _runs("pgd_at_0.1", "pgd_at", [(0.95, 0.30), (0.97, 0.40)])
    + _runs("pgd_at_0.2", "pgd_at", [(0.90, 0.50), (0.92, 0.60)])
    + _runs("iaat", "iaat", [(0.935, 0.38), (0.945, 0.50)])
  )
  analysis = frontier.analyse(runs, power_sims=0)
  assert analysis["settings"][-1]["verdict"] == "cannot_tell"
  assert "the seeds cannot tell" in analysis["verdict"][-1]


def _edge(iaat_aa):
  """A steep segment (-20 AutoAttack points per clean point) between PGD-AT
  0.2 (97 / 60) and 0.3 (96 / 80), and an IAAT setting whose clean accuracy
  sits on either side of 0.3's."""
  return (
    _runs("pgd_at_0.2", "pgd_at", [(0.972, 0.605), (0.968, 0.595), (0.970, 0.60)], train_eps=0.2)
    + _runs("pgd_at_0.3", "pgd_at", [(0.962, 0.80), (0.958, 0.805), (0.960, 0.795)], train_eps=0.3)
    + _runs("iaat", "iaat", [(0.9555, iaat_aa[0]), (0.9615, iaat_aa[1]), (0.9615, iaat_aa[2])])
  )


def test_the_edge_rule_holds_the_clean_accuracy_uncertain_too():
  """Its mean clean accuracy (95.95) is under PGD-AT 0.3's (96.0), and its
  AutoAttack accuracy surely under 0.3's: against that point alone it would
  be `below` (iaat_tf 0.6's rule). But its clean accuracy may as well lie on
  the segment to 0.2, where 77% is on the line: the seeds cannot tell."""
  analysis = frontier.analyse(_edge([0.772, 0.768, 0.770]), power_sims=0)
  s = analysis["settings"][-1]
  flat, segment = s["pieces"]
  assert flat["piece"] == "flat" and flat["shows"] == "below" and flat["ci"][1] < 0
  assert segment["between"] == ["pgd_at_0.3", "pgd_at_0.2"]
  assert segment["shows"] == "cannot_tell"
  assert s["frontier_basis"] == "higher_clean_point" and s["gap"] == pytest.approx(-0.03)
  assert s["verdict"] == "cannot_tell"
  # The hull of both pieces' intervals, so it holds on whichever is true.
  assert s["gap_ci"] == [flat["ci"][0], segment["ci"][1]]
  assert "over the 2 pieces its clean accuracy may lie on" in analysis["verdict"][-1]
  # Far below both pieces (the segment's lower end is at 60%): below.
  low = frontier.analyse(_edge([0.50, 0.49, 0.51]), power_sims=0)["settings"][-1]
  assert [p["shows"] for p in low["pieces"]] == ["below", "below"]
  assert low["verdict"] == "below"


def test_against_a_point_with_more_clean_accuracy_only_below_can_be_shown():
  """Surely less clean than every frontier point: above PGD-AT 0.3's
  AutoAttack is no finding (a larger radius may buy the same trade), under
  it is `below`."""
  frontier_runs = _edge([0.77, 0.77, 0.77])[:6]
  above = frontier_runs + _runs("iaat", "iaat", [(0.90, 0.85), (0.91, 0.86), (0.905, 0.855)])
  s = frontier.analyse(above, power_sims=0)["settings"][-1]
  assert [p["piece"] for p in s["pieces"]] == ["flat"]
  assert s["pieces"][0]["ci"][0] > 0  # Its AutoAttack is surely above 0.3's ...
  assert s["verdict"] == "not_comparable"  # ... and that is no finding.
  assert "larger than 0.3" in s["reason"] and s["gap"] is None
  below = frontier_runs + _runs("iaat", "iaat", [(0.90, 0.70), (0.91, 0.71), (0.905, 0.705)])
  s = frontier.analyse(below, power_sims=0)["settings"][-1]
  assert s["verdict"] == "below" and s["gap"] == pytest.approx(-0.095)
  # 0.3 has more of both here, on every seed: named, with its intervals.
  (d,) = s["dominated_by"]
  assert d["setting"] == "pgd_at_0.3" and d["seeds_both"] == "3/3" and d["confident"]


def test_a_radius_with_more_of_both_is_said_even_when_not_comparable():
  """A held-out task: ramped PGD-AT at 0.3 had more clean and more AutoAttack
  accuracy than IAAT on every seed (+0.5 clean, +2.2 AutoAttack, paired).
  Say so, with the intervals, not only "not comparable"."""
  runs = (
    _runs("pgd_at_0.2", "pgd_at", [(0.985, 0.60), (0.983, 0.61), (0.987, 0.59)], train_eps=0.2)
    + _runs("pgd_at_0.3", "pgd_at", [(0.975, 0.70), (0.972, 0.69), (0.978, 0.71)], train_eps=0.3)
    + _runs("iaat", "iaat", [(0.9665, 0.681), (0.9705, 0.665), (0.9730, 0.688)])
  )
  analysis = frontier.analyse(runs, power_sims=0)
  s = analysis["settings"][-1]
  (d,) = s["dominated_by"]
  assert d["setting"] == "pgd_at_0.3" and d["seeds_both"] == "3/3"
  assert d["clean"] == pytest.approx(0.005) and d["autoattack"] == pytest.approx(0.022)
  assert d["clean_ci"][0] < 0 < d["clean_ci"][1]  # Not sure of the clean difference:
  assert not d["confident"] and s["verdict"] != "below"  # not dominated for sure.
  line = analysis["verdict"][-1]
  assert (
    "pgd_at_0.3 has more clean (+0.5 [" in line
    and "and more AutoAttack accuracy (+2.2 [" in line
    and "in the means, both higher on 3/3 shared seeds" in line
  )
  # With it, more seeds could still show it below (sequential.decide goes on).
  assert frontier.finding_possible(s)
  s_alone = dict(s, dominated_by=[], verdict="not_comparable")
  assert not frontier.finding_possible(s_alone)


def test_seeds_that_fail_to_learn_are_reliability_not_accuracy(tmp_path):
  """PGD-AT at 0.25 fails on seed 1: its point is the mean over the seeds
  it learns on, "2/3" beside it, and IAAT is compared with it there."""
  runs = (
    _runs("pgd_at_0.2", "pgd_at", [(0.99, 0.62), (0.98, 0.64), (0.99, 0.63)])
    + _runs("pgd_at_0.25", "pgd_at", [(0.97, 0.68), (0.10, 0.10), (0.98, 0.70)])
    + _runs("pgd_at_0.3", "pgd_at", [(0.088, 0.086)] * 3)
    + _runs("iaat", "iaat", [(0.978, 0.66), (0.981, 0.68), (0.982, 0.67)])
  )
  analysis = frontier.analyse(runs, power_sims=0)
  by = {s["setting"]: s for s in analysis["settings"]}
  u = by["pgd_at_0.25"]
  assert u["learned_seeds"] == [0, 2] and u["learns"] == "2/3" and u["reliability"] == 2 / 3
  assert u["clean_mean"] == pytest.approx(0.975)
  assert u["autoattack_mean"] == pytest.approx(0.69)
  assert u["autoattack_std"] == pytest.approx(0.01 * math.sqrt(2))
  assert [p["learned"] for p in u["per_seed"]] == [True, False, True]
  assert u["per_seed"][1]["failure"] == "at chance"
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
  table = frontier_words.table_markdown(analysis["settings"])
  assert "| pgd_at_0.25 | 2/3 | 97.5 +- 0.7 | 69.0 +- 1.4 |" in table
  assert "1: 10.0 / 10.0 failed (at chance)" in table and "fails on every seed" in table
  path = frontier_plot.plot_frontier(analysis, str(tmp_path / "f.png"), aa_eps=0.2)
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
  # The binomial tail, as scipy.stats computes it.
  for clean, n in ((0.15, 359), (0.1225, 10_000), (0.14, 50)):
    correct = int(round(clean * n))
    tail = scipy_stats.binom.sf(correct - 1, n, 0.1)
    assert frontier.beats_chance(run(clean, n=n)) == (tail < 1e-3)
  with pytest.raises(ValueError, match="chance"):
    frontier.learns({"clean": 0.9, "autoattack": 0.5})


def test_a_collapsed_seed_is_a_failed_run():
  """12% clean on 10,000 images (chance 10%) beats chance by any binomial
  test, and 20% on 359 too; beside seeds at 97% both are runs that broke."""
  big = lambda pairs: _runs("pgd_at_0.3", "pgd_at", pairs)
  for collapsed, n in (((0.12, 0.10), 10_000), ((0.20, 0.15), 359)):
    runs = big([(0.97, 0.70), (0.975, 0.71), (0.968, 0.69), (0.972, 0.70)])
    runs.append(dict(runs[0], seed=4, clean=collapsed[0], autoattack=collapsed[1], n_examples=n))
    assert frontier.beats_chance(runs[-1])  # The binomial test alone lets it in,
    (s,) = frontier.summarise(runs)
    assert s["learns"] == "4/5" and s["per_seed"][-1]["failure"] == "collapsed"
    assert s["clean_mean"] == pytest.approx(0.97125)  # and the mean is of the four.
  # Halfway from chance to the best seed (53.5%) is the line: 53% fails, 54% learns.
  runs = big([(0.97, 0.70), (0.53, 0.30), (0.54, 0.30)])
  (s,) = frontier.summarise(runs)
  assert [p["failure"] for p in s["per_seed"]] == [None, "collapsed", None]
  # Every seed near chance together is a bad setting, not a collapse: it
  # learns (beats chance) and is placed where its runs are.
  (s,) = frontier.summarise(big([(0.20, 0.10), (0.21, 0.11), (0.19, 0.09)]))
  assert s["learns"] == "3/3" and s["clean_mean"] == pytest.approx(0.20)
  # On the page: the rule, and why each failed seed failed.
  runs = big([(0.97, 0.70), (0.975, 0.71), (0.20, 0.15)]) + _runs(
    "iaat", "iaat", [(0.96, 0.71), (0.965, 0.70), (0.962, 0.705)]
  )
  analysis = frontier.analyse(runs, power_sims=0)
  assert analysis["rules"]["failed_run"] == frontier.FAILURE_RULE
  assert "collapsed" in frontier.FAILURE_RULE and "halfway" not in frontier.FAILURE_RULE
  table = frontier_words.table_markdown(analysis["settings"])
  assert "2: 20.0 / 15.0 failed (collapsed)" in table


def test_detectable_gap_is_found_80_percent_of_the_time():
  """At the true means and noise of the gentle world (reports/calibration.py),
  the detectable gap the verdict reports is found about 80% of the time when
  it is the true advantage (independent simulation), and more seeds find a
  smaller one."""
  world = calibration.WORLDS["gentle"]
  position = world.positions[1]
  cov = np.diag(np.square(world.noise))

  def summary(name, clean, aa, seeds):
    return {
      "setting": name,
      "clean_mean": clean,
      "autoattack_mean": aa,
      "per_seed": [
        {"seed": s, "clean": clean, "autoattack": aa, "learned": True} for s in range(seeds)
      ],
    }

  points = [summary(f"u{k}", c, a, 5) for k, (c, a) in enumerate(sorted(world.uniform))]
  setting = summary("a0", position, calibration.frontier_at(world, position), 5)
  gap = power.detectable_gap(setting, points, cov)
  assert 0.04 < gap < 0.12
  one = calibration.World("one", "", world.uniform, (position,))
  found = calibration.simulate(one, 5, 300, seed=4, advantage=gap).rates()["above"]
  assert 0.7 <= found <= 0.9, found  # Measured: 0.78.
  # Half the noise variance finds less; fewer seeds need more; seeds_to_detect
  # that gap: about the seeds we have, half of it: many more.
  assert power.detectable_gap(setting, points, cov / 2) < 0.8 * gap
  three = [summary(p["setting"], p["clean_mean"], p["autoattack_mean"], 3) for p in points]
  fewer = power.detectable_gap(summary("a0", position, setting["autoattack_mean"], 3), three, cov)
  assert fewer is None or fewer > gap  # None: no gap is found 80% of the time at 3 seeds.
  assert power.seeds_to_detect(setting, points, cov, gap + 0.005) in (4, 5, 6)
  assert (power.seeds_to_detect(setting, points, cov, gap / 2) or 101) > 10


def test_analyse_states_power_and_seeds_to_detect():
  rng = np.random.default_rng(0)
  world = calibration.WORLDS["gentle"]
  runs = [
    r for name in calibration.names(world) for r in calibration.draw(rng, world, name, range(5))
  ]
  analysis = frontier.analyse(runs, detect=0.05, power_sims=100)
  adaptive = [s for s in analysis["settings"] if s["method"] == "iaat"]
  assert any(s["detectable_gap"] for s in adaptive)
  for s in adaptive:
    assert s["detect"] == 0.05 and "detectable_gap" in s and "seeds_to_detect" in s
    line = frontier_words.setting_line(s, {x["setting"]: x for x in analysis["settings"]})
    if s["detectable_gap"] is not None:
      assert f"find an advantage of {100 * s['detectable_gap']:.1f} points 80% of the time" in line
    if s["seeds_to_detect"]:
      assert f"about {s['seeds_to_detect']} seeds per setting would find 5 points" in line
  # Where seeds_to_detect found none, the words name the search's own cap.
  s = {**adaptive[0], "seeds_to_detect": None}
  line = frontier_words.setting_line(s, {x["setting"]: x for x in analysis["settings"]})
  assert f"more than {power.MOST_SEEDS} seeds per setting would be needed to find 5 points" in line
  assert power.MOST_SEEDS == 100
  rule = analysis["rules"]["detectable_gap"]
  assert "80%" in rule and "by 100 simulated" in rule and "null: no advantage" in rule
  assert frontier.analyse(runs, power_sims=0)["rules"]["detectable_gap"].startswith("not computed")


def test_settings_of_names_and_refusals():
  options = frontier_config.FrontierConfig(
    experiment="quickstart",
    out_dir="x",
    pgd_at_eps=(0.1, 8 / 255),
    iaat=("eps=0.3 gamma=0.1", "method=iaat_cheap"),
  )
  names = [s.name for s in frontier_config.settings_of(options)]
  # Uniform radii ramp over the experiment's warmup (5 epochs in quickstart).
  assert names == [
    "pgd_at_eps0.1_ramp5",
    "pgd_at_eps0.03137_ramp5",
    "iaat_eps0.3_gamma0.1",
    "iaat_cheap",
  ]
  assert frontier_config.settings_of(options)[0].flags == (
    "--method=pgd_at",
    "--eps=0.1",
    "--eps_ramp_epochs=5",
  )
  longer = dataclasses.replace(options, train_args=("--warmup_epochs=8",))
  assert frontier_config.settings_of(longer)[0].name == "pgd_at_eps0.1_ramp8"
  plain = dataclasses.replace(options, uniform_ramp=False)
  assert [s.name for s in frontier_config.settings_of(plain)][:2] == [
    "pgd_at_eps0.1",
    "pgd_at_eps0.03137",
  ]
  for bad, message in (("eps", "flag=value"), ("method=pgd_at", "not adaptive")):
    with pytest.raises(frontier_config.FrontierError, match=message):
      frontier_config.settings_of(
        frontier_config.FrontierConfig(
          experiment="quickstart", out_dir="x", pgd_at_eps=(0.1,), iaat=(bad,)
        )
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
