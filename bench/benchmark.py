"""Throughput benchmark driver: runs the sections, writes RESULTS.md and results.json.

Sections (each a module of bench/):

  step_time     train-step time per method on small models (cost ratios)
  alg2          Algorithm 2's probe options vs PGD-AT (target: 1.6x)
  real_models   WRN-32-10 at 32x32 and ResNet-50 at 224x224 per method,
                float32 / mixed_float16 / mixed_bfloat16 / XLA (attack, step)
  eval          robustness evaluation cost per 1,000 examples (AutoAttack hook)
  pipeline      the real input pipelines (needs step_time for its ratios)

  python -m bench.benchmark                 # every section -> bench/RESULTS.md (about an
                                            # hour on 2 CPU cores: the real models dominate)
  python -m bench.benchmark --quick         # smoke run of every section (~3 min), to a temp dir
  python -m bench.benchmark --sections=alg2 --output_dir=/tmp/b
  python -m bench.benchmark --from_json bench/results.json   # re-render RESULTS.md

The alg2 section also times Algorithm 2 on real end-of-training decisions:
of a finished exact quick-start run, `--alg2_run_dir=RUN`, or (without it)
one it trains first (`python -m iaat_tf.main --flagfile=flags/quickstart.flags`,
about 30 s, in a temporary folder).

Writes OUTPUT_DIR/RESULTS.md and OUTPUT_DIR/results.json (machine
description and every measurement; `--output_name` changes the base name);
with a GPU present the files are RESULTS_GPU.md and results_gpu.json, so CPU
and GPU results sit side by side.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time


from bench import common  # pylint: disable=g-import-not-at-top
from bench import alg2_speed, eval_cost, pipeline, real_models, report, step_time  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ("step_time", "alg2", "real_models", "eval", "pipeline")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="Fast smoke run of every section.")
  parser.add_argument(
    "--sections",
    default=",".join(SECTIONS),
    help=f"Comma-separated subset of {','.join(SECTIONS)}.",
  )
  parser.add_argument(
    "--output_dir",
    default=None,
    help="Where to write the results (default: bench/, or a new temporary directory with --quick).",
  )
  parser.add_argument(
    "--output_name",
    default="RESULTS",
    help="Base name of the outputs: NAME.md and name.json (lower case), "
    "with a _GPU / _gpu suffix when a GPU is present.",
  )
  parser.add_argument(
    "--real_batch",
    type=int,
    default=None,
    help="Batch of the real-model section (default: 4 / 2 on a CPU, the "
    "flagfiles' 256 / 512 on a GPU).",
  )
  parser.add_argument(
    "--real_k",
    type=int,
    default=None,
    help="PGD steps of the real-model section (default: the flagfiles').",
  )
  parser.add_argument(
    "--alg2_run_dir",
    default=None,
    help="A finished quick-start run (e.g. experiments/alg2_fidelity/alg2_fidelity.py's "
    "exact_seed0): also time Algorithm 2 on its end-of-training state.",
  )
  parser.add_argument(
    "--from_json",
    default=None,
    help="Only re-render the Markdown (next to the file) from a results JSON.",
  )
  args = parser.parse_args(argv)
  if args.from_json:
    with open(args.from_json) as f:
      payload = json.load(f)
    payload["notes"] = report.notes(payload)
    base = os.path.splitext(os.path.basename(args.from_json))[0].upper()
    report.write(
      os.path.join(os.path.dirname(os.path.abspath(args.from_json)), base + ".md"), payload
    )
    return 0
  sections = [s for s in args.sections.split(",") if s]
  unknown = sorted(set(sections) - set(SECTIONS))
  if unknown:
    parser.error(f"unknown --sections {unknown}; choose from {', '.join(SECTIONS)}")
  out = args.output_dir or (
    tempfile.mkdtemp(prefix="iaat_bench_quick_") if args.quick else os.path.join(REPO, "bench")
  )
  os.makedirs(out, exist_ok=True)
  log = lambda s: print(s, flush=True)
  common.keras.config.disable_interactive_logging()
  start = time.perf_counter()
  payload = {
    "quick": args.quick,
    "sections": sections,
    "command": "python -m bench.benchmark " + " ".join(sys.argv[1:] if argv is None else argv),
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "machine": common.machine(),
    "train_steps": [],
    "groups": [],
  }
  gpu = payload["machine"]["gpus"] > 0
  base = args.output_name + ("_GPU" if gpu else "")
  json_name, md_name = base.lower() + ".json", base + ".md"

  def save(payload):
    """Writes what is measured so far (after every section: nothing is lost
    if a later section fails or the run is stopped; `complete` says whether
    every section ran)."""
    payload["memory"] = {"maxrss_mb": common.maxrss_mb(), "device_memory": common.device_memory()}
    payload["total_seconds"] = time.perf_counter() - start
    payload["notes"] = report.notes(payload)
    with open(os.path.join(out, json_name), "w") as f:
      json.dump(payload, f, indent=2)
      f.write("\n")
    report.write(os.path.join(out, md_name), payload)

  payload["complete"] = False
  k_main = None
  if "step_time" in sections:
    log("step_time:")
    result = step_time.run(args.quick, log)
    payload["train_steps"] += result["rows"]
    payload["groups"] += result["groups"]
    payload["ratios"], k_main = result["ratios"], result["k"]
    save(payload)
  if "alg2" in sections:
    log("alg2:")
    run_dir = args.alg2_run_dir
    if run_dir is None and not args.quick:
      run_dir = _quickstart_run(log)
    payload["alg2_run_dir"] = run_dir
    result = alg2_speed.run(args.quick, log, run_dir)
    payload["train_steps"] += result["rows"]
    payload["groups"] += result["groups"]
    payload["alg2"] = {"ratios": result["ratios"]}
    save(payload)
  if "real_models" in sections:
    log("real_models:")
    result = real_models.run(args.quick, log, batch=args.real_batch, k=args.real_k)
    payload["train_steps"] += result["rows"]
    payload["groups"] += result["groups"]
    payload["real_models"] = result["ratios"]
    payload["real_models_failed"] = result["failed"]
    save(payload)
  if "eval" in sections:
    log("eval:")
    payload["eval_cost"] = eval_cost.run(args.quick, log)
    save(payload)
  if "pipeline" in sections:
    log("pipeline:")
    payload["pipelines"] = pipeline.run(args.quick, log)
    payload["pipeline_ratios"] = pipeline.ratios(
      payload["pipelines"], payload["train_steps"], k_main or 0
    )
  payload["complete"] = True
  save(payload)
  for r in payload.get("ratios", []):
    log(f"  {r['model']:16s} k={r['k']:<3d} {r['name']:52s} {r['value']:8.3f}  {r['target']}")
  log(f"wrote {out}/{md_name} and {json_name} in {payload['total_seconds']:.0f} s")
  return 0


def _quickstart_run(log) -> str:
  """Trains the exact quick start (about 30 s) for the alg2 section's trained state."""
  run_dir = os.path.join(tempfile.mkdtemp(prefix="iaat_bench_qs_"), "quickstart")
  log(f"  training the quick start for the trained-state timings: {run_dir}")
  subprocess.run(
    [
      sys.executable,
      "-m",
      "iaat_tf.main",
      "--flagfile=" + os.path.join(REPO, "flags", "quickstart.flags"),
      f"--output_dir={run_dir}",
      "--noexport",
      "--verbose=0",
    ],
    cwd=REPO,
    check=True,
  )
  return run_dir


if __name__ == "__main__":
  sys.exit(main())
