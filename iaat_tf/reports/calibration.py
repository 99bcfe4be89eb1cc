"""Simulated worlds in which the frontier's verdict is checked: how often it is wrong.

Each `World` is a true PGD-AT frontier (its radii's true clean and
AutoAttack accuracy), adaptive settings placed exactly on it (or a given
gap above it), and a seed-noise model. `simulate` draws every setting's
seeds, runs the verdict under test (`frontier.analyse` by default, or
`sequential.decide` for `--seeds=auto`) and tallies, per position, how
often it says `above` and `below` and whether its gap interval holds the
true gap. The truth is computed here, by code of its own (the true frontier
is the Pareto set of the true points joined by straight lines; left of its
lowest-clean point it is flat), so the verdict is never checked against
itself.

The family (`WORLDS`) is the one issue 38 asked for: the gentle world the
verdict was first calibrated in, a steep frontier, kinks both ways, a convex
end, heavy-tailed noise correlated both ways between clean and AutoAttack
accuracy, a collapsed seed (on 10,000 and on 359 test images), unequal seed
counts; `--seeds=auto` runs in the steep world. tests/reports/calibration_test.py
runs it small in CI; tools/frontier_calibration.py runs it at 1,000
simulations and writes docs/frontier.md's table. Pure numpy.
"""

import dataclasses
import math
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

Point = tuple[float, float]  # (clean, AutoAttack) accuracy.


@dataclasses.dataclass(frozen=True)
class World:
  """A true frontier, where adaptive settings sit on it, and how seeds scatter.

  `uniform`: PGD-AT's true points by radius (clean falling as the radius
  grows); `positions`: the adaptive settings' true clean accuracies (their
  AutoAttack accuracy is the frontier's there, plus the simulated advantage);
  `noise`: per-seed standard deviation of clean and AutoAttack accuracy;
  `dist`: "normal" or "t3" (Student's t with 3 degrees of freedom, scaled to
  that standard deviation); `rho`: the correlation of a seed's clean and
  AutoAttack noise; `collapse`: (radius index, clean, AutoAttack, test
  images) of one run (seed 0) that broke; `uniform_seeds`/`adaptive_seeds`:
  seed counts when they differ from the simulation's (a dict radius index ->
  seeds overrides single radii)."""

  name: str
  what: str
  uniform: tuple
  positions: tuple
  noise: Point = (0.006, 0.03)
  dist: str = "normal"
  rho: float = 0.0
  collapse: Optional[tuple] = None
  uniform_seeds: Optional[Mapping[int, int]] = None
  adaptive_seeds: Optional[int] = None
  n_examples: int = 359


def frontier_at(world: World, clean: float) -> float:
  """The true frontier's AutoAttack accuracy at `clean` (flat left of its
  lowest-clean point; ValueError right of its highest)."""
  pts = sorted(world.uniform)
  keep = sorted(p for p in pts if not any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in pts))
  if clean <= keep[0][0]:
    return keep[0][1]
  for (c0, a0), (c1, a1) in zip(keep, keep[1:]):
    if c0 <= clean <= c1:
      return a0 + (a1 - a0) * (clean - c0) / (c1 - c0)
  raise ValueError(f"{world.name}: clean {clean} is beyond the frontier")


def _noise(rng: np.random.Generator, world: World, n: int) -> np.ndarray:
  if world.dist == "t3":
    z = rng.standard_t(3, size=(n, 2)) / math.sqrt(3.0)
  else:
    z = rng.standard_normal((n, 2))
  aa = world.rho * z[:, 0] + math.sqrt(1 - world.rho**2) * z[:, 1]
  return np.stack([z[:, 0] * world.noise[0], aa * world.noise[1]], axis=1)


def _run(setting, method, seed, clean, aa, n, **extra) -> dict:
  return {
    "setting": setting,
    "method": method,
    "flags": [],
    "seed": seed,
    "clean": float(min(1.0, clean)),
    "autoattack": float(min(1.0, max(0.0, aa))),
    "chance": 0.1,
    "n_examples": n,
    **extra,
  }


def draw(
  rng: np.random.Generator, world: World, name: str, seeds: Sequence[int], advantage: float = 0.0
) -> list[dict]:
  """Runs of one setting ("u<k>": PGD-AT's k-th radius, "a<k>": the k-th
  adaptive position) for the given seeds."""
  kind, k = name[0], int(name[1:])
  noise = _noise(rng, world, len(seeds))
  out = []
  for (dc, da), seed in zip(noise, seeds):
    if kind == "u":
      clean, aa = world.uniform[k]
      n = world.n_examples
      if world.collapse and world.collapse[0] == k and seed == 0:
        _, clean, aa, n = world.collapse
        dc = da = 0.0
      out.append(_run(name, "pgd_at", seed, clean + dc, aa + da, n, train_eps=0.05 * (k + 1)))
    else:
      clean = world.positions[k]
      aa = frontier_at(world, clean) + advantage
      out.append(_run(name, "iaat", seed, clean + dc, aa + da, world.n_examples))
  return out


def names(world: World) -> list[str]:
  return [f"u{k}" for k in range(len(world.uniform))] + [
    f"a{k}" for k in range(len(world.positions))
  ]


def seeds_of(world: World, name: str, seeds: int) -> int:
  if name.startswith("a"):
    return world.adaptive_seeds or seeds
  return (world.uniform_seeds or {}).get(int(name[1:]), seeds)


@dataclasses.dataclass
class Tally:
  """Per position: how many verdicts, `above`, `below`, intervals, intervals
  holding the true gap."""

  n: list
  above: list
  below: list
  intervals: list
  covered: list
  seeds_used: list = dataclasses.field(default_factory=list)

  @classmethod
  def empty(cls, positions: int) -> "Tally":
    return cls(*([0] * positions for _ in range(5)))

  def add(self, settings: Sequence[Mapping], advantage: float) -> None:
    by_name = {s["setting"]: s for s in settings}
    for k in range(len(self.n)):
      s = by_name[f"a{k}"]
      self.n[k] += 1
      self.above[k] += s["verdict"] == "above"
      self.below[k] += s["verdict"] == "below"
      ci = s.get("gap_ci")
      if ci and ci[0] is not None and ci[1] is not None:
        self.intervals[k] += 1
        self.covered[k] += ci[0] <= advantage <= ci[1]

  def rates(self) -> dict:
    """Pooled and worst-position rates, coverage, and the counts behind them."""
    total = sum(self.n)
    return {
      "verdicts": total,
      "above": sum(self.above) / total,
      "below": sum(self.below) / total,
      "worst_above": max(a / n for a, n in zip(self.above, self.n)),
      "worst_below": max(b / n for b, n in zip(self.below, self.n)),
      "intervals": sum(self.intervals),
      "coverage": sum(self.covered) / max(1, sum(self.intervals)),
      "per_position": [
        {"n": n, "above": a, "below": b} for n, a, b in zip(self.n, self.above, self.below)
      ],
      "runs": float(np.mean(self.seeds_used)) if self.seeds_used else None,
    }


def simulate(
  world: World,
  seeds: int,
  sims: int,
  seed: int = 0,
  advantage: float = 0.0,
  analyse: Optional[Callable] = None,
) -> Tally:
  """`sims` experiments of `seeds` seeds per setting (the world's counts where
  it sets them), each judged by `analyse(runs)` (default: frontier.analyse,
  without its power simulations)."""
  if analyse is None:
    from iaat_tf.reports import frontier  # pylint: disable=g-import-not-at-top

    analyse = lambda runs: frontier.analyse(runs, power_sims=0)
  rng = np.random.default_rng(seed)
  tally = Tally.empty(len(world.positions))
  for _ in range(sims):
    runs = [
      r
      for name in names(world)
      for r in draw(rng, world, name, range(seeds_of(world, name, seeds)), advantage)
    ]
    tally.add(analyse(runs)["settings"], advantage)
  return tally


def simulate_sequential(
  world: World, max_seeds: int, sims: int, seed: int = 0, advantage: float = 0.0
) -> Tally:
  """`sims` experiments under `--seeds=auto --max_seeds=N` (sequential.decide):
  runs drawn only when the design asks for them."""
  from iaat_tf.reports import frontier, sequential  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  tally = Tally.empty(len(world.positions))
  settings = [
    {"name": n, "method": "iaat" if n.startswith("a") else frontier.UNIFORM[0]}
    for n in names(world)
  ]

  def run_round(pairs: list) -> list:
    return [r for name, s in pairs for r in draw(rng, world, name, [s], advantage)]

  for _ in range(sims):
    analysis = sequential.decide(settings, run_round, max_seeds, power_sims=0)
    tally.add(analysis["settings"], advantage)
    tally.seeds_used.append(analysis["sequential"]["runs"])
  return tally


def previous_verdict(runs: Sequence[Mapping]) -> dict:
  """iaat_tf 0.6's verdict, kept to be measured beside today's: the gap to the
  piece under the setting's mean clean accuracy only, its slope taken as
  known; against a point with more clean accuracy only `below`; a run fails
  only at chance (a collapsed seed is averaged in)."""
  from iaat_tf.reports import frontier, stats  # pylint: disable=g-import-not-at-top

  settings = frontier.summarise(runs, collapse=False)
  points = frontier.uniform_frontier(settings)
  for s in settings:
    if s["method"] in frontier.UNIFORM:
      continue
    if not frontier.learned(s) or not points:
      s.update(verdict="not_comparable", gap_ci=None)
      continue
    gap, basis, _, _ = frontier.gap_under_mean(s, points, stats.LEVEL)
    if gap is None:
      s.update(verdict="not_comparable", gap_ci=None)
      continue
    verdict = gap.side()
    if basis == "higher_clean_point" and verdict != "below":
      verdict = "not_comparable"
    s.update(verdict=verdict, gap_ci=gap.ci)
  return {"settings": settings}


# The family of worlds (accuracies as fractions; noise 0.6 clean and 3
# AutoAttack points per seed, as on digits, unless a world says otherwise).
GENTLE = ((0.992, 0.25), (0.991, 0.47), (0.987, 0.63), (0.974, 0.68), (0.955, 0.71))
STEEP = ((0.990, 0.05), (0.984, 0.22), (0.978, 0.38), (0.971, 0.55), (0.965, 0.70))
WORLDS = {
  w.name: w
  for w in (
    World(
      "gentle",
      "issue 32's digits-like frontier (flat, then steep at the high-clean end)",
      GENTLE,
      (0.965, 0.975, 0.980, 0.985),
    ),
    World(
      "steep",
      "5 radii spanning 2.5 clean and 65 AutoAttack points (about 26 per clean point)",
      STEEP,
      (0.966, 0.9685, 0.9745, 0.978, 0.9815, 0.986, 0.9885),
    ),
    World(
      "kink_concave",
      "(96/80), (97/75), (98/45): slope -5 then -30 points per clean point",
      ((0.98, 0.45), (0.97, 0.75), (0.96, 0.80)),
      (0.962, 0.966, 0.969, 0.972, 0.975),
    ),
    World(
      "kink_convex",
      "(96/80), (97/50), (98/45): slope -30 then -5 (steep, then flat)",
      ((0.98, 0.45), (0.97, 0.50), (0.96, 0.80)),
      (0.962, 0.965, 0.968, 0.972, 0.976),
    ),
    World(
      "convex_end",
      "concave in the middle, convex at the low-clean end (slope -8, then -2)",
      ((0.99, 0.20), (0.98, 0.50), (0.97, 0.66), (0.95, 0.70), (0.94, 0.78)),
      (0.942, 0.947, 0.955, 0.965, 0.975, 0.985),
    ),
    World(
      "heavy_correlated",
      "the steep frontier; t(3) seed noise, clean and AutoAttack correlated +0.6",
      STEEP,
      (0.9685, 0.9745, 0.978, 0.9815, 0.986),
      dist="t3",
      rho=0.6,
    ),
    World(
      "heavy_anticorrelated",
      "the gentle frontier; t(3) seed noise, clean and AutoAttack correlated -0.6",
      GENTLE,
      (0.965, 0.975, 0.980, 0.985),
      dist="t3",
      rho=-0.6,
    ),
    World(
      "collapsed_10k",
      "the gentle frontier; seed 0 of the second-largest radius (its kink at 97.4 / 68) "
      "collapsed to 12% / 10% on 10,000 test images (chance 10%)",
      GENTLE,
      (0.965, 0.970, 0.974, 0.978, 0.985),
      collapse=(3, 0.12, 0.10, 10_000),
    ),
    World(
      "collapsed_359",
      "the steep frontier; seed 0 of the second-largest radius collapsed to 20% / 15% "
      "on 359 test images",
      STEEP,
      (0.966, 0.9685, 0.9745, 0.978, 0.9815, 0.986),
      collapse=(3, 0.20, 0.15, 359),
    ),
    World(
      "unequal",
      "the steep frontier; adaptive settings at 3 seeds whatever the radii have, one radius at 4",
      STEEP,
      (0.9685, 0.9745, 0.978, 0.9815, 0.986),
      uniform_seeds={2: 4},
      adaptive_seeds=3,
    ),
  )
}
# --seeds=auto is checked in the steep world.
SEQUENTIAL = WORLDS["steep"]
