"""The method-family comparison on the digits quick start, reproducible in one command.

    python bench/method_family.py --seeds=0,1,2 [--out_dir=runs/method_family]

For every seed, trains (same model, data and epochs as flags/quickstart.flags):

  pgd_at_0.1, pgd_at_0.2, pgd_at_0.3   flags/quickstart_pgd_at.flags --eps=...
  trades                               flags/quickstart_trades.flags
  iaat                                 flags/quickstart.flags
  iaat_trades                          flags/quickstart_iaat_trades.flags

(`--runs=` picks a subset; `mart` and `iaat_mart` are available too), then
evaluates each with the project's strongest evaluation
(`python -m iaat_tf.evaluate`: per-example worst case over PGD-CE,
PGD-margin, APGD-CE and APGD-DLR on the full test split at radii 0.1, 0.2,
0.3), and writes

  OUT_DIR/seed<S>/<run>/          each run (results.json holds the curve)
  OUT_DIR/summary.json, summary.md clean and worst-case accuracy at 0.2 per
                                   run: every seed and mean +- std
  OUT_DIR/pareto/                  python -m iaat_tf.pareto over all runs

Finished runs (results.json with a "robustness" entry) are skipped, so an
interrupted comparison continues where it stopped. Every step is a separate
process running the package's command-line entry points.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {  # name -> flags after --flagfile
    "pgd_at_0.1": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.1"],
    "pgd_at_0.2": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.2"],
    "pgd_at_0.3": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.3"],
    "trades": ["--flagfile=flags/quickstart_trades.flags"],
    "iaat": ["--flagfile=flags/quickstart.flags"],
    "iaat_trades": ["--flagfile=flags/quickstart_iaat_trades.flags"],
    "mart": ["--flagfile=flags/quickstart_pgd_at.flags", "--loss=mart"],
    "iaat_mart": ["--flagfile=flags/quickstart.flags", "--loss=mart"],
}
DEFAULT_RUNS = ("pgd_at_0.1", "pgd_at_0.2", "pgd_at_0.3", "trades", "iaat",
                "iaat_trades")
EPS_LIST = "0.1,0.2,0.3"
REPORT_EPS = 0.2  # The quick start's evaluation radius.


def _python(module: str, *args: str) -> None:
  command = [sys.executable, "-m", module, *args]
  print("+", " ".join(command), flush=True)
  subprocess.run(command, cwd=REPO, check=True)


def _results(run_dir: str) -> dict:
  path = os.path.join(run_dir, "results.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def run_one(name: str, seed: int, run_dir: str) -> dict:
  """Trains and evaluates one run unless it is already finished."""
  if "robustness" not in _results(run_dir):
    _python("iaat_tf.main", *RUNS[name], f"--seed={seed}",
            f"--output_dir={run_dir}", "--verbose=0")
    _python("iaat_tf.evaluate", f"--run_dir={run_dir}", f"--eps_list={EPS_LIST}",
            "--max_examples=0")
  results = _results(run_dir)
  point = next(p for p in results["robustness"]["curve"]
               if abs(p["eps"] - REPORT_EPS) < 1e-9)
  return {"clean": results["robustness"]["clean_accuracy"],
          "worst_case": point["worst_case"],
          "train_seconds": results["train_seconds"]}


def _mean_std(values):
  return (statistics.mean(values),
          statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(table: dict, seeds) -> str:
  lines = [f"Digits quick start, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
           f"worst case over PGD-CE/margin and APGD-CE/DLR at eps {REPORT_EPS}, "
           "full test split (python -m iaat_tf.evaluate).", "",
           "| run | clean (mean +- std) | worst case (mean +- std) | per seed (clean / worst) |",
           "| --- | --- | --- | --- |"]
  for name, per_seed in table.items():
    clean = _mean_std([r["clean"] for r in per_seed.values()])
    worst = _mean_std([r["worst_case"] for r in per_seed.values()])
    each = ", ".join(f"{r['clean']:.3f} / {r['worst_case']:.3f}"
                     for r in per_seed.values())
    lines.append(f"| {name} | {clean[0]:.3f} +- {clean[1]:.3f} | "
                 f"{worst[0]:.3f} +- {worst[1]:.3f} | {each} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0", help="Comma-separated seeds.")
  parser.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                      help=f"Comma-separated subset of {', '.join(RUNS)}.")
  parser.add_argument("--out_dir", default="runs/method_family")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  names = args.runs.split(",")
  unknown = [n for n in names if n not in RUNS]
  if unknown:
    parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
  out = os.path.abspath(args.out_dir)
  table = {name: {} for name in names}
  for seed in seeds:
    for name in names:
      table[name][seed] = run_one(name, seed, os.path.join(out, f"seed{seed}", name))
  summary = summarise(table, seeds)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(summary)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"seeds": seeds, "eps": REPORT_EPS, "runs": table}, f, indent=2)
  run_dirs = sorted(glob.glob(os.path.join(out, "seed*", "*")))
  _python("iaat_tf.pareto", f"--runs={','.join(run_dirs)}",
          f"--out_dir={os.path.join(out, 'pareto')}")
  print(summary)


if __name__ == "__main__":
  main()
