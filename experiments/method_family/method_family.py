"""The method-family comparison on the digits quick start, reproducible in one command.

    python -m experiments.method_family.method_family --seeds=0,1,2 [--out_dir=runs/method_family]

For every seed, trains (same model, data and epochs as flags/quickstart.flags):

  pgd_at_0.1, pgd_at_0.2, pgd_at_0.3   flags/quickstart_pgd_at.flags --eps=...
  trades                               flags/quickstart_trades.flags
  iaat                                 flags/quickstart.flags
  iaat_trades                          flags/quickstart_iaat_trades.flags

(`--runs=` picks a subset; `iaat_cheap`, `iaat_fast`, `mart`, `iaat_mart`,
`iaat_sminus_adv` (the authors' code's S- rule), `fgsm_rs` and `iaat_fgsm`
(single-step training: flags/quickstart_fgsm_rs.flags and
flags/quickstart_iaat_fgsm.flags), `pgd_at_0.2_ema` and `iaat_ema` (the
weight average, `--ema_decay=0.99 --export_model=ema`), and the L2 threat
model's `l2_pgd_at_0.5`, `l2_pgd_at_1.0`, `l2_pgd_at_1.5` and `l2_iaat`
(flags/quickstart_pgd_at_l2.flags, flags/quickstart_l2.flags) are available
too), then evaluates each on the full test split at eps 0.2 (L2 runs: L2
eps 1.0) with the project's
strongest evaluation, AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square),
and with the PGD/APGD suite's per-example worst case (PGD-CE, PGD-margin,
APGD-CE, APGD-DLR) beside it (`python -m iaat_tf.evaluate
--attacks=autoattack,suite`), and writes

  OUT_DIR/seed<S>/<run>/          each run (results.json holds both)
  OUT_DIR/summary.json, summary.md clean, AutoAttack and worst-case accuracy
                                   per run: every seed and mean +- std
  OUT_DIR/summary.png              clean vs AutoAttack accuracy, mean +- std
  OUT_DIR/pareto/, pareto_l2/      python -m iaat_tf.pareto over the L-inf
                                   runs, and over the L2 runs

Finished runs (results.json with an "autoattack" entry) are skipped, so an
interrupted comparison continues where it stopped. Every step is a separate
process running the package's command-line entry points; `--jobs=2` runs two
runs at a time (small models use a 2-core CPU better that way).
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

from iaat_tf.training import devices

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = {  # name -> flags after --flagfile
  "pgd_at_0.1": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.1"],
  "pgd_at_0.2": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.2"],
  "pgd_at_0.3": ["--flagfile=flags/quickstart_pgd_at.flags", "--eps=0.3"],
  "trades": ["--flagfile=flags/quickstart_trades.flags"],
  "iaat": ["--flagfile=flags/quickstart.flags"],
  "iaat_cheap": ["--flagfile=flags/quickstart.flags", "--method=iaat_cheap"],
  "iaat_fast": ["--flagfile=flags/quickstart.flags", "--alg2_preset=fast"],
  "iaat_trades": ["--flagfile=flags/quickstart_iaat_trades.flags"],
  "mart": ["--flagfile=flags/quickstart_pgd_at.flags", "--loss=mart"],
  "iaat_mart": ["--flagfile=flags/quickstart.flags", "--loss=mart"],
  # The authors' code's S- rule (S- train on the attack at 0.9 p).
  "iaat_sminus_adv": ["--flagfile=flags/quickstart.flags", "--s_minus=adversarial"],
  # Fast (single-step) training: FGSM-RS, and the cheap IAAT rule on it.
  "fgsm_rs": ["--flagfile=flags/quickstart_fgsm_rs.flags"],
  "iaat_fgsm": ["--flagfile=flags/quickstart_iaat_fgsm.flags"],
  # The weight average (decay 0.99: ~340 steps in the quick start), exported.
  "pgd_at_0.2_ema": [
    "--flagfile=flags/quickstart_pgd_at.flags",
    "--eps=0.2",
    "--ema_decay=0.99",
    "--export_model=ema",
  ],
  "iaat_ema": ["--flagfile=flags/quickstart.flags", "--ema_decay=0.99", "--export_model=ema"],
  # The L2 threat model (every radius of the L-inf files x5).
  "l2_pgd_at_0.5": ["--flagfile=flags/quickstart_pgd_at_l2.flags", "--eps=0.5"],
  "l2_pgd_at_1.0": ["--flagfile=flags/quickstart_pgd_at_l2.flags"],
  "l2_pgd_at_1.5": ["--flagfile=flags/quickstart_pgd_at_l2.flags", "--eps=1.5"],
  "l2_iaat": ["--flagfile=flags/quickstart_l2.flags"],
}
DEFAULT_RUNS = ("pgd_at_0.1", "pgd_at_0.2", "pgd_at_0.3", "trades", "iaat", "iaat_trades")
REPORT_EPS = 0.2  # The quick start's evaluation radius.
L2_REPORT_EPS = 1.0  # The L2 quick start's.


def report_eps(name: str) -> float:
  return L2_REPORT_EPS if name.startswith("l2_") else REPORT_EPS


LABELS = {
  "pgd_at_0.1": "PGD-AT 0.1",
  "pgd_at_0.2": "PGD-AT 0.2",
  "pgd_at_0.3": "PGD-AT 0.3",
  "trades": "TRADES 0.3",
  "iaat": "IAAT (Alg. 2)",
  "iaat_fast": "IAAT (Alg. 2, fast probes)",
  "iaat_cheap": "IAAT (cheap rule)",
  "iaat_trades": "IAAT + TRADES loss",
  "mart": "MART 0.3",
  "iaat_mart": "IAAT + MART loss",
  "iaat_sminus_adv": "IAAT, S- adversarial (authors' code)",
  "fgsm_rs": "FGSM-RS 0.2",
  "iaat_fgsm": "IAAT (cheap rule) on FGSM-RS",
  "pgd_at_0.2_ema": "PGD-AT 0.2, weight average",
  "iaat_ema": "IAAT (Alg. 2), weight average",
  "l2_pgd_at_0.5": "L2 PGD-AT 0.5",
  "l2_pgd_at_1.0": "L2 PGD-AT 1.0",
  "l2_pgd_at_1.5": "L2 PGD-AT 1.5",
  "l2_iaat": "L2 IAAT (Alg. 2)",
}


def _python(module: str, *args: str, env=None) -> None:
  command = [sys.executable, "-m", module, *args]
  print("+", " ".join(command), flush=True)
  subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=env)


def _results(run_dir: str) -> dict:
  path = os.path.join(run_dir, "results.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def run_one(name: str, seed: int, run_dir: str, env=None) -> dict:
  """Trains and evaluates one run unless it is already finished; `env`: its
  processes' environment (its GPUs, devices.child_env)."""
  if "autoattack" not in _results(run_dir):
    _python(
      "iaat_tf.main",
      *RUNS[name],
      f"--seed={seed}",
      f"--output_dir={run_dir}",
      "--verbose=0",
      env=env,
    )
    _python(
      "iaat_tf.evaluate",
      f"--run_dir={run_dir}",
      f"--eps_list={report_eps(name)}",
      "--num_examples=0",
      "--attacks=autoattack,suite",
      env=env,
    )
  results = _results(run_dir)
  point = next(p for p in results["robustness"]["curve"] if abs(p["eps"] - report_eps(name)) < 1e-9)
  return {
    "clean": results["robustness"]["clean_accuracy"],
    "autoattack": results["autoattack"]["robust_accuracy"],
    "worst_case": point["worst_case"],
    "train_seconds": results["train_seconds"],
  }


def _mean_std(values):
  return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _radius_text(names) -> str:
  """Where the runs were evaluated: L-inf 0.2, L2 1.0, or both."""
  l2 = [n.startswith("l2_") for n in names]
  if all(l2):
    return f"L2 eps {L2_REPORT_EPS}"
  return f"eps {REPORT_EPS}" + (f" (l2_ runs: L2 eps {L2_REPORT_EPS})" if any(l2) else "")


def summarise(table: dict, seeds) -> str:
  lines = [
    f"Digits quick start, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
    f"full 359-image test split at {_radius_text(table)}: AutoAttack standard "
    "robust accuracy, and the worst case over PGD-CE/margin and "
    "APGD-CE/DLR (python -m iaat_tf.evaluate --attacks=autoattack,suite).",
    "",
    "| run | clean | AutoAttack | worst case (PGD/APGD) | train s |",
    "| --- | --- | --- | --- | --- |",
  ]
  for name, per_seed in table.items():
    cells = []
    for key in ("clean", "autoattack", "worst_case"):
      mean, std = _mean_std([r[key] for r in per_seed.values()])
      cells.append(f"{100 * mean:.1f} +- {100 * std:.1f}")
    seconds = statistics.mean(r["train_seconds"] for r in per_seed.values())
    lines.append(f"| {name} | {' | '.join(cells)} | {seconds:.0f} |")
  lines += [
    "",
    "Accuracies in %, mean +- standard deviation over the seeds.",
    "",
    "Per seed (clean / AutoAttack / worst case):",
    "",
  ]
  for name, per_seed in table.items():
    each = ", ".join(
      f"seed {s}: {100 * r['clean']:.1f} / {100 * r['autoattack']:.1f}"
      f" / {100 * r['worst_case']:.1f}"
      for s, r in per_seed.items()
    )
    lines.append(f"* {name}: {each}")
  return "\n".join(lines) + "\n"


def plot_means(table: dict, seeds, path: str) -> str:
  """Clean vs AutoAttack accuracy, mean +- std over seeds, one point per run."""
  from iaat_tf.reports import plots  # pylint: disable=g-import-not-at-top

  plt = plots.plt
  fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), gridspec_kw={"width_ratios": [1, 1.3]})
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  offsets = {"iaat_fast": (6, -12), "iaat_cheap": (-100, -12)}
  for ax, zoom in zip(axes, (False, True)):
    for n, (name, per_seed) in enumerate(table.items()):
      aa = [100 * r["autoattack"] for r in per_seed.values()]
      clean = [100 * r["clean"] for r in per_seed.values()]
      (x, dx), (y, dy) = _mean_std(aa), _mean_std(clean)
      if zoom and y < 80:
        continue
      marker = "o" if "iaat" in name else "s"
      ax.errorbar(
        x,
        y,
        xerr=dx,
        yerr=dy,
        fmt=marker,
        capsize=3,
        color=colors[n % len(colors)],
        label=LABELS.get(name, name),
      )
      if zoom:
        ax.annotate(
          LABELS.get(name, name),
          (x, y),
          textcoords="offset points",
          xytext=offsets.get(name, (6, 4)),
          fontsize=8,
        )
    ax.set_xlabel(f"AutoAttack robust accuracy at {_radius_text(table)} (%)")
    ax.set_ylabel("clean accuracy (%)")
    ax.grid(alpha=0.3)
    if not zoom:
      ax.set_xlim(0, 100)
      ax.set_ylim(0, 100)
      ax.set_title("all runs")
    else:
      ax.set_title("zoom: runs that learn")
  axes[0].legend(loc="lower right", fontsize=7, frameon=False)
  fig.suptitle(
    f"Digits quick start, {len(seeds)} seeds: mean +- std (IAAT circles, uniform radius squares)"
  )
  return plots.save_figure(fig, path)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0", help="Comma-separated seeds.")
  parser.add_argument(
    "--runs", default=",".join(DEFAULT_RUNS), help=f"Comma-separated subset of {', '.join(RUNS)}."
  )
  parser.add_argument("--out_dir", default="runs/method_family")
  parser.add_argument(
    "--jobs", type=int, default=1, help="Runs trained and evaluated at the same time."
  )
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  names = args.runs.split(",")
  unknown = [n for n in names if n not in RUNS]
  if unknown:
    parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
  out = os.path.abspath(args.out_dir)
  table = {name: {} for name in names}
  jobs = [(name, seed) for seed in seeds for name in names]
  # Each run its own GPU on a GPU box (training/devices.py); on CPU, --jobs at a time.
  available = devices.slots(devices.gpu_ids("auto"), 1)

  def one(job, slot):
    name, seed = job
    run_dir = os.path.join(out, f"seed{seed}", name)
    table[name][seed] = run_one(name, seed, run_dir, devices.child_env(slot))

  devices.run_in_slots(jobs, one, available, devices.jobs_for(args.jobs, available))
  summary = summarise(table, seeds)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(summary)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(
      {"seeds": seeds, "eps": REPORT_EPS, "l2_eps": L2_REPORT_EPS, "runs": table}, f, indent=2
    )
  plot_means(table, seeds, os.path.join(out, "summary.png"))
  run_dirs = sorted(glob.glob(os.path.join(out, "seed*", "*")))
  for norm, dirs in (
    ("", [d for d in run_dirs if not os.path.basename(d).startswith("l2_")]),
    ("_l2", [d for d in run_dirs if os.path.basename(d).startswith("l2_")]),
  ):
    if dirs:  # One threat model per Pareto plot.
      _python(
        "iaat_tf.pareto",
        f"--runs={','.join(dirs)}",
        f"--out_dir={os.path.join(out, 'pareto' + norm)}",
      )
  print(summary)


if __name__ == "__main__":
  main()
