"""The digits frontier's verdict, redone from its stored runs (no training).

    python -m experiments.frontier_digits.reanalyse [--detect=5]

frontier.json keeps every run's numbers (clean and AutoAttack accuracy,
chance, test images, radii); this reruns `frontier.analyse` on them and
rewrites frontier.json, frontier.md and frontier.png beside it, as
`iaat-frontier` would have after training them. With `--seeds_auto` it also
replays `--seeds=auto --max_seeds=5` on the same 60 runs (a run is
deterministic in its seed, so the runs the design asks for are the ones it
would have trained) and rewrites frontier_seeds_auto.json. No TensorFlow;
seconds.
"""

import argparse
import json
import os
import sys

from iaat_tf import run_io
from iaat_tf.reports import frontier, frontier_plot, frontier_words, sequential

HERE = os.path.dirname(os.path.abspath(__file__))


def _write(payload: dict, name: str) -> None:
  run_io.write_json(os.path.join(HERE, f"{name}.json"), payload)
  if name == "frontier":
    run_io.atomic_write_bytes(
      os.path.join(HERE, "frontier.md"), frontier_words.page(payload).encode()
    )
    frontier_plot.plot_frontier(
      payload, os.path.join(HERE, "frontier.png"), aa_eps=payload["aa_eps"], norm=payload["norm"]
    )


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--detect", type=float, default=5.0, help="AutoAttack points (0: none)")
  parser.add_argument("--seeds_auto", action="store_true", help="also replay --seeds=auto")
  args = parser.parse_args(argv)
  with open(os.path.join(HERE, "frontier.json")) as f:
    stored = json.load(f)
  runs = stored["runs"]
  keep = {k: stored[k] for k in ("experiment", "norm", "aa_eps", "seeds", "failures", "seconds")}
  detect = args.detect / 100 or None
  analysis = frontier.analyse(runs, detect=detect)
  _write({**keep, **analysis, "runs": runs}, "frontier")
  for line in analysis["verdict"]:
    print(line)
  if args.seeds_auto:
    by_key = {(r["setting"], r["seed"]): r for r in runs}
    order = list(dict.fromkeys(r["setting"] for r in runs))
    methods = {r["setting"]: r["method"] for r in runs}
    asked: list = []

    def run_round(pairs: list) -> list:
      asked.extend(pairs)
      return [by_key[p] for p in pairs if p in by_key]

    auto = sequential.decide(
      [{"name": n, "method": methods[n]} for n in order], run_round, 5, log=print, detect=detect
    )
    used = [by_key[p] for p in asked if p in by_key]
    _write({**keep, "seeds": "auto", **auto, "runs": used}, "frontier_seeds_auto")
    print(f"--seeds=auto: {len(used)} runs of {len(runs)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
