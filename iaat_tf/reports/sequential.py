"""Seeds where they decide something: the frontier's sequential design (`--seeds=auto`).

Every setting starts at `START` (3) seeds. After each round the frontier is
analysed (reports/frontier.py); an adaptive setting whose verdict is
`above`, `below` or `not_comparable` stops there, and one still
`cannot_tell` gets one more seed, as do the PGD-AT radii it is compared with
(the frontier points that bracket it), until every adaptive setting has
stopped or reached `max_seeds`. A setting's verdict is the one of the look
at which it stopped.

Error rate. A setting without any advantage is looked at up to
L = max_seeds - START + 1 times, and each look could call it `above` by
chance; stopping at the first such look would inflate that chance about L
times. Every look's gap interval is therefore a Bonferroni-corrected one, at
level 1 - 0.05 / L (`level`): the chance that any of a setting's looks finds
a gap that is not there stays at most 2.5% on each side, whatever the data
do between looks. tests/reports/sequential_test.py measures it by
simulation (false `above` at most 5%, as the fixed-seed verdict's
calibration test) and the power left.

Pure functions of run dicts: `decide` runs the rounds through a
`run_round(pairs) -> runs` callable (cli/frontier_run.py trains and judges
the pairs; the tests simulate them).
"""

from typing import Callable, Mapping, Sequence

from iaat_tf.reports import frontier, stats

START = 3
# The verdict fields of a setting, frozen at the look where it stopped.
VERDICT_KEYS = (
  "verdict",
  "gap",
  "gap_ci",
  "gap_level",
  "gap_se",
  "gap_df",
  "frontier_autoattack",
  "frontier_basis",
  "compared_with",
  "reason",
)


def looks(max_seeds: int, start: int = START) -> int:
  """How many times a setting can be judged: at start, start + 1, ..., max_seeds."""
  return max(1, max_seeds - start + 1)


def level(max_seeds: int, base: float = stats.LEVEL, start: int = START) -> float:
  """Each look's interval level: Bonferroni over the looks (0.95 -> 1 - 0.05 / L)."""
  return 1.0 - (1.0 - base) / looks(max_seeds, start)


def decide(
  settings: Sequence[Mapping],
  run_round: Callable[[list], list],
  max_seeds: int,
  start: int = START,
  log: Callable[[str], None] = lambda _: None,
) -> dict:
  """Runs rounds until every adaptive setting stopped; returns frontier.json's analysis.

  `settings`: [{"name", "method"}]; `run_round([(name, seed), ...])` returns
  the runs it could make (a failed run is retried next round). The result is
  `frontier.analyse` of every run, each adaptive setting carrying the
  verdict of the look where it stopped, "seeds" (how many it got) and
  "stopped" (why), plus "sequential": {"start", "max_seeds", "level",
  "rounds", "runs"}.
  """
  if max_seeds < start:
    raise ValueError(f"--max_seeds={max_seeds} must be >= {start} (the first round)")
  names = [s["name"] for s in settings]
  adaptive = [s["name"] for s in settings if s["method"] not in frontier.UNIFORM]
  count = {name: start for name in names}
  runs: dict = {}
  stopped: dict = {}
  at = level(max_seeds, start=start)
  rounds = 0
  while True:
    rounds += 1
    todo = [(n, seed) for n in names for seed in range(count[n]) if (n, seed) not in runs]
    for run in run_round(todo):
      runs[(run["setting"], run["seed"])] = run
    analysis = frontier.analyse(list(runs.values()), level=at)
    by_name = {s["setting"]: s for s in analysis["settings"]}
    grow = set()
    for name in adaptive:
      if name in stopped or name not in by_name:
        continue
      s = by_name[name]
      why = None
      if s["verdict"] in ("above", "below"):
        why = f"decided at {count[name]} seeds"
      elif s["verdict"] == "not_comparable":
        why = f"not comparable at {count[name]} seeds"
      elif count[name] >= max_seeds:
        why = f"still cannot tell at the cap, {max_seeds} seeds"
      if why:
        stopped[name] = ({k: s.get(k) for k in VERDICT_KEYS}, count[name], why)
      else:
        grow |= {name, *s["compared_with"]}
    grow = {n for n in grow if count[n] < max_seeds}
    log(
      f"frontier: round {rounds}: {len(runs)} runs; "
      + (f"adding a seed to {', '.join(sorted(grow))}" if grow else "every setting has stopped")
    )
    if not grow:
      break
    for n in grow:
      count[n] += 1
  for s in analysis["settings"]:
    s["seeds_planned"] = count[s["setting"]]
    if s["setting"] in stopped:
      fields, _, why = stopped[s["setting"]]
      s.update(fields)
      s["stopped"] = why
  analysis["verdict"] = frontier.verdict(
    analysis["settings"], frontier.uniform_frontier(analysis["settings"])
  )
  analysis["sequential"] = {
    "start": start,
    "max_seeds": max_seeds,
    "level": at,
    "rounds": rounds,
    "runs": len(runs),
    "correction": f"Bonferroni over {looks(max_seeds, start)} looks per setting",
  }
  return analysis
