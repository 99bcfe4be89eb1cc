"""Seeds where they decide something: the frontier's sequential design (`--seeds=auto`).

Every setting starts at `START` (3) seeds. After each round the frontier is
analysed (reports/frontier.py); an adaptive setting stops when its verdict
is `above` or `below`, or when no finding remains possible (not comparable,
and no PGD-AT radius has more of both in the means: `frontier.finding_possible`).
Otherwise it gets one more seed, as do the PGD-AT radii its verdict rests on
(every frontier point of the pieces its clean accuracy may lie on, and the
radii with more of both in the means), until it stops or reaches
`max_seeds`. A setting's verdict, and the numbers the page prints beside
it, are those of the look at which it stopped ("look": which round, and how
many seeds each setting involved had then).

Error rate. A setting without any advantage is looked at up to
L = max_seeds - START + 1 times, and each look could call it `above` by
chance; stopping at the first such look would inflate that chance about L
times. Every look's verdict is therefore taken at a corrected level
(`levels`, Bonferroni over the looks: the last look gets half the 5%, the
earlier ones share the other half), for its gap intervals and for ruling
pieces out alike. reports/calibration.py measures it by simulation in the
steep world (tests/reports/calibration_test.py, docs/frontier.md's table),
and tests/reports/sequential_test.py the power left.

Pure functions of run dicts: `decide` runs the rounds through a
`run_round(pairs) -> runs` callable (runs/frontier_run.py trains and judges
the pairs; the tests simulate them).
"""

from typing import Callable, Mapping, Optional, Sequence

from iaat_tf.reports import frontier, frontier_words, stats

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
  "pieces",
  "dominated_by",
  "detectable_gap",
  "seeds_to_detect",
  "detect",
  "reason",
)


def looks(max_seeds: int, start: int = START) -> int:
  """How many times a setting can be judged: at start, start + 1, ..., max_seeds."""
  return max(1, max_seeds - start + 1)


def levels(max_seeds: int, base: float = stats.LEVEL, start: int = START) -> tuple:
  """(early, final): the verdict's level at a setting's looks before its last,
  and at its last (at `max_seeds`). Bonferroni over the looks with the error
  split unequally: the last look gets half of it, the earlier ones share the
  other half (0.95, 3 looks: 98.75% twice, then 97.5%). The chance that any
  look finds a gap that is not there stays at most (1 - base) / 2 a side."""
  n = looks(max_seeds, start)
  if n == 1:
    return base, base
  alpha = 1.0 - base
  return 1.0 - alpha / 2 / (n - 1), 1.0 - alpha / 2


def _involved(s: Mapping) -> set:
  """The PGD-AT settings a setting's verdict rests on: the pieces its clean
  accuracy may lie on, the points it is compared with, the radii with more of both."""
  names = set(s.get("compared_with") or [])
  for piece in s.get("pieces") or []:
    names |= set(piece["between"])
  names |= {d["setting"] for d in s.get("dominated_by") or []}
  return names


def decide(
  settings: Sequence[Mapping],
  run_round: Callable[[list], list],
  max_seeds: int,
  start: int = START,
  log: Callable[[str], None] = lambda _: None,
  detect: Optional[float] = None,
  power_sims: int = frontier.power.SIMS,
) -> dict:
  """Runs rounds until every adaptive setting stopped; returns frontier.json's analysis.

  `settings`: [{"name", "method"}]; `run_round([(name, seed), ...])` returns
  the runs it could make (a failed run is retried next round). A setting
  stops when decided (`above`, `below`), when no finding remains possible
  (`frontier.finding_possible`: not comparable, and no PGD-AT radius has more
  of both in the means), or at `max_seeds`. The result is `frontier.analyse`
  of every run, each adaptive setting carrying the verdict of the look where
  it stopped, "look" (which round, every involved setting's seeds then, its
  own means then), "seeds_planned" and "stopped" (why), plus "sequential":
  {"start", "max_seeds", "level", "rounds", "runs", "correction"}.
  """
  if max_seeds < start:
    raise ValueError(f"--max_seeds={max_seeds} must be >= {start} (the first round)")
  names = [s["name"] for s in settings]
  adaptive = [s["name"] for s in settings if s["method"] not in frontier.UNIFORM]
  count = {name: start for name in names}
  runs: dict = {}
  stopped: dict = {}
  early, final = levels(max_seeds, start=start)
  rounds = 0
  while True:
    rounds += 1
    todo = [(n, seed) for n in names for seed in range(count[n]) if (n, seed) not in runs]
    for run in run_round(todo):
      runs[(run["setting"], run["seed"])] = run
    judged = {
      at: frontier.analyse(list(runs.values()), level=at, power_sims=0)
      for at in sorted({early, final})
    }
    grow = set()
    for name in adaptive:
      at = final if count[name] >= max_seeds else early
      analysis = judged[at]
      by_name = {s["setting"]: s for s in analysis["settings"]}
      if name in stopped or name not in by_name:
        continue
      s = by_name[name]
      why = None
      if s["verdict"] in ("above", "below"):
        why = f"decided at {count[name]} seeds"
      elif not frontier.finding_possible(s):
        why = f"not comparable at {count[name]} seeds"
      elif count[name] >= max_seeds:
        why = f"still {s['verdict'].replace('_', ' ')} at the cap, {max_seeds} seeds"
      if why:
        frontier.add_power(analysis["settings"], at, detect, power_sims, only=[name])
        look = {
          "round": rounds,
          "seeds": {n: len(by_name[n]["seeds"]) for n in [name, *sorted(_involved(s))]},
          "means": {
            k: s.get(k) for k in ("clean_mean", "clean_std", "autoattack_mean", "autoattack_std")
          },
        }
        stopped[name] = ({k: s[k] for k in VERDICT_KEYS if k in s}, look, why)
      else:
        grow |= {name, *_involved(s)}
    grow = {n for n in grow if n in count and count[n] < max_seeds}
    log(
      f"frontier: round {rounds}: {len(runs)} runs; "
      + (f"adding a seed to {', '.join(sorted(grow))}" if grow else "every setting has stopped")
    )
    if not grow:
      break
    for n in grow:
      count[n] += 1
  analysis = judged[final]
  for s in analysis["settings"]:
    s["seeds_planned"] = count[s["setting"]]
    if s["setting"] in stopped:
      fields, look, why = stopped[s["setting"]]
      s.update(fields)
      s["look"] = look
      s["stopped"] = why
  analysis["verdict"] = frontier_words.verdict(analysis["settings"])
  # The looks were analysed without power simulations; each stopped setting's
  # power was added by `power_sims` of them.
  analysis["rules"]["detectable_gap"] = frontier.power_rule(power_sims)
  analysis["sequential"] = {
    "start": start,
    "max_seeds": max_seeds,
    "level": final,
    "early_level": early,
    "rounds": rounds,
    "runs": len(runs),
    "correction": (
      f"Bonferroni over {looks(max_seeds, start)} looks per setting: "
      f"{100 * early:.4g}% before the last, {100 * final:.4g}% at it"
    ),
  }
  return analysis
