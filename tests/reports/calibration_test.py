"""How often the frontier's verdict is wrong, in a family of simulated worlds.

reports/calibration.py holds the worlds (steep, kinks both ways, a convex
end, heavy-tailed and correlated noise, a collapsed seed, unequal seed
counts; --seeds=auto in the steep world) and computes the truth with code of
its own. Targets per side and per world (issue 38), at 1,000 simulations:
false `above` and false `below` at most 3.5% pooled over positions and 5% at
any position (6% in the collapsed-seed worlds), gap-interval coverage at
least 93%. Here each world runs small and seeded; a rate fails its target
when it is above it beyond what chance on this many verdicts explains
(one-sided binomial p < 0.01), so a calibrated verdict passes and a
miscalibrated one does not: `test_the_check_has_teeth` runs iaat_tf 0.6's
verdict (the segment under the mean, as if it were the only one) in the
steep world and sees it fail. tools/frontier_calibration.py runs the
1,000-simulation table in docs/frontier.md.
"""

import pytest
from scipy import stats as scipy_stats

from iaat_tf.reports import calibration

SIMS = 200
POOLED, WORST, WORST_COLLAPSED, COVERAGE = 0.035, 0.05, 0.06, 0.93


def _too_high(count: int, n: int, target: float) -> bool:
  """count / n is above target beyond chance (P(X >= count | target) < 0.01)."""
  return scipy_stats.binom.sf(count - 1, n, target) < 0.01


def _too_low(count: int, n: int, target: float) -> bool:
  return scipy_stats.binom.cdf(count, n, target) < 0.01


def _failures(tally: calibration.Tally, world: calibration.World) -> list[str]:
  worst = WORST_COLLAPSED if world.collapse else WORST
  out = []
  for side in ("above", "below"):
    counts = getattr(tally, side)
    if _too_high(sum(counts), sum(tally.n), POOLED):
      out.append(f"false {side} {sum(counts)}/{sum(tally.n)} pooled")
    for k, (c, n) in enumerate(zip(counts, tally.n)):
      if _too_high(c, n, worst):
        out.append(f"false {side} {c}/{n} at position {world.positions[k]}")
  if _too_low(sum(tally.covered), sum(tally.intervals), COVERAGE):
    out.append(f"coverage {sum(tally.covered)}/{sum(tally.intervals)}")
  return out


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("name", sorted(calibration.WORLDS))
def test_the_verdict_is_calibrated_in_every_world(name, seeds):
  world = calibration.WORLDS[name]
  tally = calibration.simulate(world, seeds, SIMS, seed=seeds)
  assert not _failures(tally, world), tally.rates()
  # Every position was judged every time, and most got an interval.
  assert tally.n == [SIMS] * len(world.positions)
  assert sum(tally.intervals) > 0.8 * sum(tally.n)


def test_seeds_auto_is_calibrated_in_the_steep_world():
  world = calibration.SEQUENTIAL
  tally = calibration.simulate_sequential(world, max_seeds=5, sims=100, seed=1)
  assert not _failures(tally, world), tally.rates()
  names = calibration.names(world)
  assert 3 * len(names) <= tally.rates()["runs"] <= 5 * len(names)


def test_the_gentle_worlds_power_is_kept():
  """A true advantage of 10 AutoAttack points at 5 seeds: found at least 40%
  of the time (the target; measured 72%, and the test holds 60%: without the
  segments' AutoAttack-span bound it was 41%), never called below, and its
  interval holds."""
  tally = calibration.simulate(calibration.WORLDS["gentle"], 5, SIMS, seed=2, advantage=0.10)
  rates = tally.rates()
  assert rates["above"] >= 0.6 and rates["below"] == 0, rates
  assert not _too_low(sum(tally.covered), sum(tally.intervals), COVERAGE)


def test_the_check_has_teeth():
  """The verdict of iaat_tf 0.6 calls a setting that lies on a steep frontier
  `below` far too often: this suite fails it (issue 38 measured 7-9%)."""
  world = calibration.WORLDS["steep"]
  tally = calibration.simulate(world, 5, SIMS, seed=5, analyse=calibration.previous_verdict)
  assert any("false below" in f for f in _failures(tally, world)), tally.rates()
  assert tally.rates()["below"] > 0.06


def test_the_truth_is_computed_on_its_own():
  """The simulation's truth: the frontier's Pareto points joined by lines,
  flat left of its lowest-clean point; a dominated radius is not on it."""
  world = calibration.World(
    "t", "", ((0.99, 0.2), (0.98, 0.5), (0.97, 0.6), (0.96, 0.55)), (0.975,)
  )
  assert calibration.frontier_at(world, 0.975) == pytest.approx(0.55)
  assert calibration.frontier_at(world, 0.985) == pytest.approx(0.35)
  assert calibration.frontier_at(world, 0.95) == pytest.approx(0.6)  # Flat; 0.96 is dominated.
  with pytest.raises(ValueError, match="beyond"):
    calibration.frontier_at(world, 0.995)
  # A collapsed seed is drawn where the world says, and only there.
  import numpy as np  # pylint: disable=g-import-not-at-top

  collapsed = calibration.WORLDS["collapsed_10k"]
  runs = calibration.draw(np.random.default_rng(0), collapsed, "u3", range(3))
  assert (runs[0]["clean"], runs[0]["autoattack"], runs[0]["n_examples"]) == (0.12, 0.10, 10_000)
  assert runs[1]["clean"] > 0.9 and runs[1]["n_examples"] == 359
