"""One run of a frontier: train it, judge it, read its numbers (subprocesses).

`train_and_evaluate(setting, seed, options)` trains (or resumes) one run
with `python -m iaat_tf.main` and judges it with `python -m
iaat_tf.evaluate` in its own processes (their output in OUT_DIR/logs/), an
AutoAttack made with other options attacked again (runs/frontier_cache.py);
`read_run` reads the numbers the analysis needs; `make_executor` is where
the runs execute (runs/executors.py: local device slots or Ray).
"""

import os
import subprocess
import sys
from typing import Optional, Sequence

from iaat_tf import run_io
from iaat_tf.options import flag_args
from iaat_tf.runs import frontier_cache
from iaat_tf.runs.frontier_config import FrontierConfig, FrontierError, Setting
from iaat_tf.training import devices


def _die_with_parent() -> None:
  """In the child, before exec (Linux): SIGKILL when the process that started
  it dies, so a killed frontier or Ray worker leaves no training behind (its
  run resumes from its checkpoint when started again)."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def _run(command: Sequence[str], log_path: str, env: Optional[dict] = None) -> None:
  with open(log_path, "a") as log:
    visible = (env or {}).get("CUDA_VISIBLE_DEVICES")
    log.write(
      f"$ {'' if visible is None else f'CUDA_VISIBLE_DEVICES={visible} '}{' '.join(command)}\n"
    )
    log.flush()
    result = subprocess.run(
      command,
      stdout=log,
      stderr=subprocess.STDOUT,
      env=env,
      preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
  if result.returncode:
    with open(log_path, errors="replace") as log:
      lines = [line.strip() for line in log if line.strip()]
    said = f": {lines[-1]}" if lines and not lines[-1].startswith("$ ") else ""
    raise RuntimeError(f"{command[2]} exited {result.returncode}{said} (log: {log_path})")


def train_args(setting: Setting, seed: int, options: FrontierConfig, experiment_path: str) -> list:
  """The training command's flags for one run (`python -m iaat_tf.main ...`)."""
  return [
    f"--flagfile={experiment_path}",
    *options.train_args,
    *setting.flags,
    f"--seed={seed}",
    f"--output_dir={setting.run_dir(options.out_dir, seed)}",
  ]


def train_and_evaluate(
  setting: Setting,
  seed: int,
  options: FrontierConfig,
  experiment_path: str,
  env: Optional[dict] = None,
) -> dict:
  """Trains (or resumes) and evaluates one run; returns its numbers. `env`:
  its processes' environment (devices.child_env: its slot's GPUs)."""
  run_dir = setting.run_dir(options.out_dir, seed)
  logs = os.path.join(options.out_dir, "logs")
  os.makedirs(logs, exist_ok=True)
  log_path = os.path.join(logs, f"{setting.name}_seed{seed}.log")
  python = sys.executable
  _run(
    [python, "-m", "iaat_tf.main", *train_args(setting, seed, options, experiment_path)],
    log_path,
    env,
  )
  # AutoAttack again unless the stored one was made with the options asked for.
  stale = frontier_cache.autoattack_differences(run_dir, options.autoattack)
  attacks = [] if stale == [] else ["autoattack"]
  if options.curve and "robustness" not in (run_io.read_results(run_dir) or {}):
    attacks.append("suite")
  if stale:
    with open(log_path, "a") as log:
      log.write(f"# frontier: AutoAttack made with {', '.join(stale)}: attacked again\n")
  if attacks:
    _run(
      [
        python,
        "-m",
        "iaat_tf.evaluate",
        f"--run_dir={run_dir}",
        f"--attacks={','.join(attacks)}",
        *flag_args(options.autoattack),
      ],
      log_path,
      env,
    )
  return read_run(run_dir, setting, seed)


def read_run(run_dir: str, setting: Setting, seed: int) -> dict:
  """The numbers the analysis needs from a finished, evaluated run."""
  results = run_io.read_results(run_dir)
  if not results or "autoattack" not in results:
    raise run_io.RunDirError(f"{run_dir}: no AutoAttack in its results.json; rerun iaat-evaluate")
  aa = results["autoattack"]
  run = {
    "setting": setting.name,
    "method": setting.method,
    "flags": list(setting.flags),
    "seed": seed,
    "run_dir": run_dir,
    "clean": float(aa["clean_accuracy"]),
    "autoattack": float(aa["robust_accuracy"]),
    "aa_eps": float(aa["eps"]),
    "norm": results.get("norm", "linf"),
    "n_examples": int(aa["n_examples"]),
    "chance": _chance(run_dir, aa),
  }
  eps = results.get("eps") or {}
  if setting.method == "pgd_at":
    run["train_eps"] = float(eps.get("mean", float("nan")))
  table = os.path.join(run_dir, "eps_table.npy")
  if os.path.isfile(table):
    import numpy as np  # pylint: disable=g-import-not-at-top

    radii = np.load(table)
    run["eps_quantiles"] = [float(v) for v in np.percentile(radii, [10, 25, 50, 75, 90])]
  return run


def _chance(run_dir: str, aa: dict) -> float:
  """The majority-class rate of the labels AutoAttack judged (autoattack.json;
  for a run judged before it recorded one, its per-example file)."""
  if aa.get("majority_rate") is not None:
    return float(aa["majority_rate"])
  import csv  # pylint: disable=g-import-not-at-top
  from iaat_tf.evaluation import autoattack  # pylint: disable=g-import-not-at-top

  path = os.path.join(run_dir, "eval", aa.get("examples_file", "autoattack_examples.csv"))
  try:
    with open(path) as f:
      labels = [int(row["label"]) for row in csv.DictReader(f)]
  except (OSError, KeyError, ValueError) as e:
    raise run_io.RunDirError(
      f"{run_dir}: no majority-class rate in its AutoAttack "
      f"and no per-example labels ({e}); rerun iaat-evaluate"
    ) from None
  rate = autoattack.majority_rate(labels)
  if rate is None:
    raise run_io.RunDirError(f"{run_dir}: its per-example AutoAttack file is empty")
  return rate


def make_executor(options: FrontierConfig):
  """The executor `options.executor` names, with its devices (FrontierError if
  it cannot start)."""
  from iaat_tf.runs import executors  # pylint: disable=g-import-not-at-top

  try:
    if options.executor == "ray":
      return executors.RayExecutor(
        options.ray_address,
        options.gpus_per_run,
        options.cpus_per_run,
        growth=options.gpu_memory_growth,
        log_dir=os.path.join(options.out_dir, "logs"),
      )
    available = devices.slots(devices.gpu_ids(options.gpus), options.gpus_per_run)
    workers = devices.jobs_for(options.jobs, available)
  except (devices.DeviceError, executors.ExecutorError) as e:
    raise FrontierError(str(e)) from None
  return executors.LocalExecutor(available, workers, growth=options.gpu_memory_growth)
