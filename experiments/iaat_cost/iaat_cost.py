"""IAAT at PGD-AT's cost: Algorithm 2's cheaper variants, timed, counted and attacked.

One command trains every variant over seeds on two tasks, judges every run
with AutoAttack, times the variants' train steps against PGD-AT in one
round-robin process per model (bench/probe_variants.py), counts their
forward/backward passes per image, and writes beside this file:

* iaat_cost.json: one object per (variant, task) with `variant`, `task`,
  `flags`, `step_time_ratio_vs_pgd_at` (the task's model: the quick-start
  CNN), `step_time_ratios` (every timed model), `passes_per_image`, `seeds`,
  `autoattack_mean`, `autoattack_std`, `clean_mean`, `clean_std`, the
  per-seed runs, and against the exact algorithm the paired differences
  with their standard errors and the goal's verdict (experiments/iaat_cost/cost.py);
* README.md: page_intro.md (the hand-written part), then the tables, the
  picture and the verdict with the recommendation, generated;
* iaat_cost.png: AutoAttack accuracy against step time, with error bars.

    python -m experiments.iaat_cost.iaat_cost --jobs=2          # everything
    python -m experiments.iaat_cost.iaat_cost --parts=report    # redraw from what exists
    python -m experiments.iaat_cost.iaat_cost --parts=report --from_json
        # redraw from the per-seed numbers stored in iaat_cost.json (no runs/)

Parts (in this order): `runs` (train + AutoAttack every variant, task and
seed; finished runs are kept: a rerun trains nothing), `bench` (the timings
and pass counts, alone on the machine; bench.json), `report`.

Tasks: `digits`, the quick start (the variants were designed on it), and
`shapes16`, 16x16 drawn shapes (shapes.py; written to runs/), not tuned on:
uniform PGD-AT at its warmup radius fails to learn there. The digits runs of
`pgd_at` and `exact` have the frontier's flags and seeds
(experiments/frontier_digits): when that folder's runs exist they are copied
instead of retrained. runs/ is not committed.
"""

import argparse
import json
import os
import shutil
import sys
import time


from iaat_tf import run_io
from iaat_tf.runs import flagfiles
from iaat_tf.training import devices
from iaat_tf.runs.frontier_config import FrontierConfig, settings_of
from iaat_tf.runs.frontier_jobs import train_and_evaluate
from iaat_tf.evaluation.settings import AutoAttackOptions
from experiments.iaat_cost import cost

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

RUNS = os.path.join(HERE, "runs")
FRONTIER_RUNS = os.path.join(REPO, "experiments", "frontier_digits", "runs")
# variant -> its --iaat setting (frontier syntax) at warmup radius EPS, or
# None for uniform PGD-AT at EPS.
VARIANTS = {
  "pgd_at": None,
  "exact": "eps={eps}",
  "reuse": "eps={eps} alg2_preset=reuse",
  "fast": "eps={eps} alg2_preset=fast",
  "cheap": "method=iaat_cheap eps={eps}",
}
TASKS = {
  "digits": {"experiment": "quickstart", "eps": 0.3, "model": "small_cnn_8x8"},
  # The cheap rule is trained on digits only (it misses the goal there;
  # shapes16's runs are the expensive ones). AutoAttack judges the first
  # 100 of its 400 test images: most are robust, so every attack runs all
  # its iterations (about 20 minutes per run on 400 here, 2 CPU cores).
  "shapes16": {
    "experiment": os.path.join(HERE, "shapes16.flags"),
    "eps": 0.1,
    "npz": os.path.join(RUNS, "shapes16.npz"),
    "seeded": ("exact", "reuse", "pgd_at"),
    "aa_max_examples": 100,
  },
}
# The variants trained over seeds: the goal's candidates (at most 1.3x
# PGD-AT's step) and the two references. `fast` (about 1.7x) is timed and
# counted only.
SEEDED = ("pgd_at", "exact", "reuse", "cheap")
BENCH_MODELS = ("small_cnn_8x8", "wrn_16_2_32x32")


def _options(task: str, seeds, jobs: int) -> FrontierConfig:
  spec = TASKS[task]
  eps = spec["eps"]
  iaat = [v.format(eps=eps) for v in VARIANTS.values() if v is not None]
  train_args = (f"--npz_path={spec['npz']}",) if "npz" in spec else ()
  # PGD-AT here is the cost yardstick, at full radius from the first step
  # (no ramp, as these runs were trained); the fair accuracy comparison with
  # a ramped uniform radius is the frontier's (experiments/frontier_digits).
  return FrontierConfig(
    experiment=spec["experiment"],
    out_dir=os.path.join(RUNS, task),
    pgd_at_eps=(eps,),
    iaat=tuple(iaat),
    seeds=tuple(seeds),
    jobs=jobs,
    train_args=train_args,
    curve=False,
    uniform_ramp=False,
    autoattack=AutoAttackOptions(max_examples=spec.get("aa_max_examples", 0)),
  )


def _settings(options: FrontierConfig) -> dict:
  """variant -> frontier Setting (name, method, flags)."""
  settings = settings_of(options)
  return dict(zip(VARIANTS, settings))


def _copy_frontier_runs(options: FrontierConfig, settings: dict, log) -> None:
  """The frontier's finished digits runs of the same settings and seeds."""
  for name in ("pgd_at", "exact"):
    for seed in options.seeds:
      source = settings[name].run_dir(os.path.dirname(FRONTIER_RUNS), seed)
      target = settings[name].run_dir(options.out_dir, seed)
      if os.path.isfile(os.path.join(source, "results.json")) and not os.path.exists(target):
        shutil.copytree(source, target)
        log(f"iaat_cost: copied {os.path.relpath(source, REPO)}")


def run_all(seeds, jobs: int, log) -> dict:
  """Trains and evaluates every (task, variant, seed); returns the runs per task."""
  from experiments.iaat_cost import shapes  # pylint: disable=g-import-not-at-top

  os.makedirs(RUNS, exist_ok=True)
  if not os.path.isfile(TASKS["shapes16"]["npz"]):
    shapes.write(TASKS["shapes16"]["npz"])
  out = {}
  start = time.perf_counter()
  # Each run its own GPUs (one per run) on a GPU box; on CPU, `jobs` at a time.
  available = devices.slots(devices.gpu_ids("auto"), 1)
  workers = devices.jobs_for(jobs, available)
  for task in TASKS:
    options = _options(task, seeds, jobs)
    settings = _settings(options)
    if task == "digits":
      _copy_frontier_runs(options, settings, log)
    experiment = os.path.abspath(flagfiles.resolve(options.experiment))
    seeded = TASKS[task].get("seeded", SEEDED)
    todo = [(name, seed) for name in seeded for seed in seeds]

    results = []

    def one(
      job,
      slot,
      options=options,
      settings=settings,
      experiment=experiment,
      task=task,
      results=results,
    ):
      name, seed = job
      began = time.perf_counter()
      try:
        env = devices.child_env(slot)
        run = train_and_evaluate(settings[name], seed, options, experiment, env)
      except (RuntimeError, KeyError, run_io.RunDirError) as e:  # Keep the others going.
        log(f"iaat_cost: FAILED {task} {name} seed {seed}: {e} (rerun to retry)")
        return
      log(
        f"iaat_cost: {task} {name} seed {seed}: clean {run['clean']:.4f}, AutoAttack "
        f"{run['autoattack']:.4f} ({time.perf_counter() - began:.0f} s; "
        f"{time.perf_counter() - start:.0f} s elapsed)"
      )
      results.append((name, run))

    devices.run_in_slots(todo, one, available, workers)
    # In seed order, whichever finished first.
    out[task] = {
      name: sorted((r for n, r in results if n == name), key=lambda r: r["seed"]) for name in seeded
    }
  return out


def read_all(seeds) -> dict:
  """The finished runs (for --parts=report): variant -> runs, per task."""
  from iaat_tf.runs.frontier_jobs import read_run  # pylint: disable=g-import-not-at-top

  out = {}
  for task in TASKS:
    options = _options(task, seeds, 1)
    settings = _settings(options)
    out[task] = {}
    for name in TASKS[task].get("seeded", SEEDED):
      setting, runs = settings[name], []
      for seed in seeds:
        run_dir = setting.run_dir(options.out_dir, seed)
        if not os.path.isfile(os.path.join(run_dir, "results.json")):
          continue  # Not trained (yet).
        try:
          runs.append(read_run(run_dir, setting, seed))
        except (run_io.RunDirError, KeyError, TypeError):
          pass  # Trained, not judged by AutoAttack (yet).
      out[task][name] = runs
  return out


def _test_labels(task: str):
  """The labels AutoAttack judged on `task` (its whole test split, or the
  first aa_max_examples of it)."""
  if task == "digits":
    from iaat_tf.data import load_digits_arrays  # pylint: disable=g-import-not-at-top

    labels = load_digits_arrays()[1][1]
  else:
    from experiments.iaat_cost import shapes  # pylint: disable=g-import-not-at-top

    labels = shapes.make(400, 1)[1]  # shapes.write's test split.
  n = TASKS[task].get("aa_max_examples") or len(labels)
  return labels[:n]


def read_stored() -> dict:
  """The per-seed numbers iaat_cost.json holds (for --from_json: runs/ is not
  committed), with each task's chance rate and test size for `learns`."""
  from iaat_tf.evaluation.autoattack import majority_rate  # pylint: disable=g-import-not-at-top

  with open(os.path.join(HERE, "iaat_cost.json")) as f:
    stored = json.load(f)
  out = {}
  for row in stored["variants"]:
    labels = _test_labels(row["task"])
    out.setdefault(row["task"], {})[row["variant"]] = [
      {
        **r,
        "run_dir": os.path.join(REPO, r["run_dir"]),
        "aa_eps": stored["aa_eps"][row["task"]],
        "chance": majority_rate(labels),
        "n_examples": len(labels),
      }
      for r in row["runs"]
    ]
  return out


def run_bench(log) -> dict:
  """Step times and passes (bench/probe_variants.py) in the exact seed-0 digits state."""
  from bench import probe_variants  # pylint: disable=g-import-not-at-top

  run_dir = _settings(_options("digits", (0,), 1))["exact"].run_dir(os.path.join(RUNS, "digits"), 0)
  result = probe_variants.run(False, log, run_dir if os.path.isdir(run_dir) else None)
  run_io.write_json(os.path.join(HERE, "bench.json"), result)
  return result


def analyse(runs: dict, bench: dict) -> dict:
  ratios = {}
  for r in bench.get("ratios", []):
    ratios.setdefault(r["variant"], {})[r["model"]] = r["ratio_vs_pgd_at"]
  passes = {p["variant"]: p["passes"] for p in bench.get("passes", [])}
  rows = []
  for task, variants in runs.items():
    settings = _settings(_options(task, (0,), 1))
    exact = variants.get("exact", [])
    for name, task_runs in variants.items():
      if not task_runs:
        continue
      row = {
        "variant": name,
        "task": task,
        "flags": list(settings[name].flags),
        "chance": task_runs[0]["chance"],
        "n_examples": task_runs[0]["n_examples"],
        "step_time_ratio_vs_pgd_at": ratios.get(name, {}).get("small_cnn_8x8"),
        "step_time_ratios": ratios.get(name, {}),
        "passes_per_image": passes.get(name),
        **cost.summarise(task_runs),
        "runs": [{k: r[k] for k in ("seed", "clean", "autoattack", "run_dir")} for r in task_runs],
      }
      if name != "exact":
        row.update(cost.judge(task_runs, exact, list(ratios.get(name, {}).values())))
      rows.append(row)
  aa_eps = {
    task: variants["exact"][0]["aa_eps"] for task, variants in runs.items() if variants.get("exact")
  }
  costs = {
    name: {"ratios": ratios.get(name, {}), "passes": passes.get(name, float("nan"))}
    for name in VARIANTS
  }
  return {
    "variants": rows,
    "aa_eps": aa_eps,
    "costs": costs,
    "bench_machine": bench.get("machine"),
    "goal": {"max_step_ratio": cost.MAX_RATIO, "autoattack_margin": cost.MARGIN},
  }


CANDIDATES = ("reuse", "cheap")


def verdict(payload: dict) -> list:
  """The goal per candidate and task, in words, and the recommendation."""
  lines, met = [], {}
  for name in CANDIDATES:
    rows = [r for r in payload["variants"] if r["variant"] == name]
    if not rows:
      continue
    ratios = rows[0].get("step_time_ratios", {})
    cost_words = ", ".join(f"{v:.2f}x on {m}" for m, v in ratios.items()) or "not timed"
    lines.append(
      f"**{name}**: step time {cost_words} PGD-AT's "
      f"({'within' if rows[0].get('cost_ok') else 'over'} {cost.MAX_RATIO}x)."
    )
    for r in rows:
      clean = f"clean {cost.with_ci(r['clean_diff_vs_exact'], r['clean_diff_ci'])} points"
      lines.append(
        f"  - {r['task']} ({r['paired_seeds']} paired seeds): AutoAttack "
        f"{r['aa_verdict']}; {clean}; goal "
        + (
          "met, and the seeds tell"
          if r["meets_and_told"]
          else "met on the means (the seeds cannot tell a 1-point loss from none)"
          if r["meets_on_means"]
          else "missed"
        )
        + "."
      )
    met[name] = all(r["meets_on_means"] for r in rows)
  winners = [n for n in CANDIDATES if met.get(n)]
  if winners:
    lines.append(
      f"Recommendation: `{winners[0]}` meets the goal on the means on every "
      "task; see the rows for what the seeds can tell."
    )
  else:
    best = max(
      (r for r in payload["variants"] if r["variant"] in CANDIDATES),
      key=lambda r: r.get("aa_diff_vs_exact", -1),
      default=None,
    )
    if best is not None:
      lines.append(
        f"No candidate meets the goal on every task; the closest AutoAttack "
        f"accuracy is {best['variant']}'s on {best['task']}, "
        f"{100 * best['aa_diff_vs_exact']:+.1f} points from exact Algorithm 2."
      )
  return lines


def write_report(payload: dict) -> None:
  for r in payload["variants"]:
    for run in r["runs"]:
      run["run_dir"] = os.path.relpath(run["run_dir"], REPO)
  payload["verdict"] = verdict(payload)
  run_io.write_json(os.path.join(HERE, "iaat_cost.json"), payload)
  tasks = {}
  for r in payload["variants"]:
    tasks.setdefault(r["task"], []).append(r)
  cost.plot_cost(
    tasks, os.path.join(HERE, "iaat_cost.png"), model="small_cnn_8x8", aa_eps=payload["aa_eps"]
  )
  timing = [
    "| variant | "
    + " | ".join(f"step / PGD-AT ({m})" for m in BENCH_MODELS)
    + " | passes / image (forward + backward) |",
    "|---|" + "---:|" * (len(BENCH_MODELS) + 1),
  ]
  for name, values in payload["costs"].items():
    timing.append(
      f"| {name} | "
      + " | ".join(
        f"{values['ratios'][m]:.2f}" if m in values["ratios"] else "n/a" for m in BENCH_MODELS
      )
      + f" | {values['passes']:.1f} |"
    )
  tables = []
  for task, rows in tasks.items():
    n = TASKS[task].get("aa_max_examples", 0)
    where = f"the first {n} test images" if n else "the whole test split"
    tables.append(
      f"### {task}: AutoAttack at eps {payload['aa_eps'][task]:.3g} on {where}, "
      f"{len(rows[0]['seeds'])} seeds, mean +- std (%)\n\n"
      + cost.table_markdown(rows, BENCH_MODELS[:1])
    )
  with open(os.path.join(HERE, "page_intro.md")) as f:
    intro = f.read()
  page = (
    intro.rstrip()
    + "\n\n## Cost (one round-robin run per model)\n\n"
    + "\n".join(timing)
    + "\n\n## Robustness\n\n"
    + "\n".join(tables)
    + "\n![AutoAttack accuracy against step time](iaat_cost.png)\n\n"
    "## Verdict (generated from the numbers above)\n\n"
    + "\n".join(l if l.startswith("  -") else f"- {l}" for l in payload["verdict"])
    + "\n"
  )
  run_io.atomic_write_bytes(os.path.join(HERE, "README.md"), page.encode())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--parts", default="runs,bench,report", help="Comma-separated subset of runs,bench,report."
  )
  parser.add_argument("--seeds", default="0,1,2,3,4")
  parser.add_argument("--jobs", type=int, default=2, help="Runs at a time.")
  parser.add_argument(
    "--from_json",
    action="store_true",
    help="report: the per-seed numbers in iaat_cost.json, not runs/.",
  )
  args = parser.parse_args(argv)
  parts = set(args.parts.split(","))
  unknown = parts - {"runs", "bench", "report"}
  if unknown:
    parser.error(f"unknown --parts {sorted(unknown)}; choose from runs, bench, report")
  seeds = [int(s) for s in args.seeds.split(",")]
  log = lambda s: print(s, flush=True)
  runs = run_all(seeds, args.jobs, log) if "runs" in parts else None
  bench = run_bench(log) if "bench" in parts else None
  if "report" in parts:
    if runs is None:
      runs = read_stored() if args.from_json else read_all(seeds)
    if bench is None:
      with open(os.path.join(HERE, "bench.json")) as f:
        bench = json.load(f)
    write_report(analyse(runs, bench))
    log(f"iaat_cost: wrote {os.path.relpath(HERE, REPO)}/iaat_cost.json, README.md, iaat_cost.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
