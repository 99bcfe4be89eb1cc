"""The frontier's runs: train and judge every (setting, seed), then analyse.

`run_frontier(FrontierConfig)` trains uniform PGD-AT at every radius and
every adaptive setting for every seed (`python -m iaat_tf.main` in a
subprocess, `jobs` at a time), judges each run with `python -m
iaat_tf.evaluate` (AutoAttack, the robustness curve), skips what a previous
call finished, and writes frontier.json, frontier.md and frontier.png
(`reports/frontier.py` computes them). `iaat_tf.frontier` is the command.
What a rerun may reuse (training that matches, AutoAttack made with the
same options) is decided by cli/frontier_cache.py.
"""

import dataclasses
import os
import subprocess
import sys
import threading
import time
from typing import Callable, Literal, Optional, Sequence, Tuple

from iaat_tf import run_io
from iaat_tf.cli import frontier_cache
from iaat_tf.training import devices
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.options import Section, document_fields, flag_args, option

EXPERIMENT, EVALUATION, DEVICES = "Experiment", "Evaluation", "Devices"


class FrontierError(ValueError):
  """Bad input to the frontier command (one line)."""


@dataclasses.dataclass(frozen=True)
class Setting:
  """One training setting: a name and the flags it adds to the experiment."""

  name: str
  method: str
  flags: tuple

  def run_dir(self, out_dir: str, seed: int) -> str:
    return os.path.join(out_dir, "runs", f"{self.name}_seed{seed}")


@dataclasses.dataclass(frozen=True)
class FrontierConfig(Section):
  """The frontier experiment: which settings, how many seeds, how judged."""

  experiment: str = option(
    "",
    "The experiment: a shipped flagfile's name (quickstart) or a path to your own flagfile.",
    group=EXPERIMENT,
  )
  out_dir: str = option(
    "", "Output folder (runs/, logs/, frontier.*).", group=EXPERIMENT, path=True
  )
  pgd_at_eps: Tuple[float, ...] = option(
    (), "Uniform PGD-AT radii, e.g. 0.05,0.1,0.2 or 4/255,8/255.", group=EXPERIMENT
  )
  iaat: Tuple[str, ...] = option(
    (),
    "An adaptive setting: flag=value pairs over the experiment's (repeat the "
    "flag for several), e.g. --iaat='eps=0.3 gamma=0.1' or --iaat=method=iaat_cheap.",
    group=EXPERIMENT,
    repeated=True,
  )
  seeds: Tuple[int, ...] = option(
    (0, 1, 2),
    "Seeds of every setting, or auto: 3 each, then one more per round to the "
    "adaptive settings whose verdict is undecided and the PGD-AT radii that bracket "
    "them, up to --max_seeds (reports/sequential.py).",
    group=EXPERIMENT,
  )
  max_seeds: int = option(
    5, "With --seeds=auto: the most seeds a setting gets.", group=EXPERIMENT, minimum=3
  )
  detect: float = option(
    0.0,
    "An advantage in AutoAttack points (e.g. 2): each verdict says about how many seeds "
    "per setting would find it 80% of the time (0: not asked).",
    group=EVALUATION,
    minimum=0,
  )
  # Set by --seeds=auto (not a flag of its own).
  auto_seeds: bool = option(False, "Seeds chosen by the sequential design.", flag=None)
  train_args: Tuple[str, ...] = option(
    (),
    "Training flags for every run, e.g. '--epochs=30 --warmup_epochs=5' (one string).",
    group=EXPERIMENT,
    words=True,
  )
  jobs: int = option(
    0,
    "Runs at a time (0: one per device slot, --gpus_per_run GPUs each; 1 on a "
    "machine without GPUs).",
    group=DEVICES,
    minimum=0,
  )
  gpus: str = option(
    "auto",
    "GPUs to share out: auto (CUDA_VISIBLE_DEVICES if set, else every GPU "
    "nvidia-smi lists), none, or ids like 0,1,2,3.",
    group=DEVICES,
  )
  gpus_per_run: int = option(
    1,
    "GPUs each run gets (its processes see only those: CUDA_VISIBLE_DEVICES); "
    "with 2+, set --strategy=mirrored in the experiment to use them.",
    group=DEVICES,
    minimum=0,
  )
  executor: Literal["local", "ray"] = option(
    "local",
    "Where runs execute: local (this machine, --jobs at a time in device slots) or "
    "ray (each run a Ray task with --gpus_per_run GPUs and --cpus_per_run CPUs; "
    "pip install \"iaat_tf[ray]\"; --out_dir on storage every worker shares).",
    group=DEVICES,
  )
  ray_address: Optional[str] = option(
    None,
    "With --executor=ray: the cluster to join (e.g. auto, or ray://HOST:10001); "
    "default: a new local cluster.",
    group=DEVICES,
  )
  cpus_per_run: float = option(
    1.0, "With --executor=ray: CPUs each run's task asks for.", group=DEVICES, above=0
  )
  gpu_memory_growth: bool = option(
    True,
    "Runs allocate GPU memory as needed (TF_FORCE_GPU_ALLOW_GROWTH); "
    "--nogpu_memory_growth: TensorFlow's default, all of each visible GPU.",
    group=DEVICES,
  )
  # Uniform PGD-AT's radius ramps from 0 over the experiment's --warmup_epochs:
  # the start IAAT's warmup gives its settings. False: full radius from the
  # first step.
  uniform_ramp: bool = option(
    True,
    "Ramp uniform PGD-AT's radius from 0 over the experiment's "
    "--warmup_epochs, the start IAAT's warmup gives its settings "
    "(--nouniform_ramp: the full radius from the first step).",
    group=EXPERIMENT,
  )
  curve: bool = option(
    True, "Also the robustness curve over radii (evaluate's suite).", group=EVALUATION
  )
  autoattack: AutoAttackOptions = AutoAttackOptions()

  def __post_init__(self):
    super().__post_init__()
    if self.auto_seeds:
      return
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise FrontierError("--seeds must list distinct integers, or be auto")


document_fields(FrontierConfig)


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def warmup_epochs(options: FrontierConfig) -> int:
  """The experiment's --warmup_epochs (its flagfile, then --train_args)."""
  from iaat_tf import config as cfg  # pylint: disable=g-import-not-at-top
  from iaat_tf.cli import flagfiles  # pylint: disable=g-import-not-at-top

  value = cfg.MethodConfig().warmup_epochs
  try:
    args = flagfiles.expand([f"--flagfile={options.experiment}", *options.train_args])
  except flagfiles.FlagfileError as e:
    raise FrontierError(str(e).replace("--flagfile", "--experiment")) from None
  for arg in args:
    if arg.startswith("--warmup_epochs="):
      try:
        value = int(arg.partition("=")[2])
      except ValueError:
        raise FrontierError(f"{arg}: not an integer") from None
  return value


def settings_of(options: FrontierConfig) -> list[Setting]:
  """PGD-AT at each radius (ramped over the experiment's warmup unless
  `uniform_ramp` is off), then each adaptive setting (default method iaat)."""
  out = []
  ramp = warmup_epochs(options) if options.uniform_ramp else 0
  for eps in options.pgd_at_eps:
    name = f"pgd_at_eps{eps:.4g}"
    flags: tuple[str, ...] = ("--method=pgd_at", f"--eps={eps!r}")
    if ramp:
      name, flags = f"{name}_ramp{ramp}", flags + (f"--eps_ramp_epochs={ramp}",)
    out.append(Setting(name, "pgd_at", flags))
  for text in options.iaat:
    pairs = [p for p in text.replace(",", " ").split() if p]
    values = {}
    for pair in pairs:
      key, sep, value = pair.lstrip("-").partition("=")
      if not sep or not key or not value:
        raise FrontierError(
          f"--iaat={text!r}: write flag=value pairs, e.g. --iaat='eps=0.3 gamma=0.1'"
        )
      values[key] = value
    method = values.pop("method", "iaat")
    if method not in ("iaat", "iaat_cheap"):
      raise FrontierError(
        f"--iaat={text!r}: method={method} is not adaptive "
        "(iaat or iaat_cheap; uniform radii go to --pgd_at_eps)"
      )
    name = _slug("_".join([method] + [f"{k}{v}" for k, v in values.items()]))
    out.append(
      Setting(
        name, method, (f"--method={method}",) + tuple(f"--{k}={v}" for k, v in values.items())
      )
    )
  names = [s.name for s in out]
  if len(set(names)) != len(names):
    raise FrontierError(f"two settings are the same: {', '.join(names)}")
  return out


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
  from iaat_tf.cli import executors  # pylint: disable=g-import-not-at-top

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


def run_frontier(options: FrontierConfig, log: Callable[[str], None] = print) -> dict:
  """Trains, evaluates and analyses every (setting, seed); returns frontier.json."""
  from iaat_tf.cli import flagfiles  # pylint: disable=g-import-not-at-top
  from iaat_tf.reports import (  # pylint: disable=g-import-not-at-top
    frontier,
    frontier_plot,
    frontier_words,
    sequential,
  )

  try:
    experiment_path = os.path.abspath(flagfiles.resolve(options.experiment))
  except flagfiles.FlagfileError as e:
    raise FrontierError(str(e).replace("--flagfile", "--experiment")) from None
  settings = settings_of(options)
  by_name = {s.name: s for s in settings}
  seeds = range(options.max_seeds) if options.auto_seeds else options.seeds
  refusal = frontier_cache.check_training(
    [
      (s.run_dir(options.out_dir, seed), train_args(s, seed, options, experiment_path))
      for s in settings
      for seed in seeds
    ],
    options.out_dir,
    log,
    data=options.executor == "local",  # Ray: the data is read on the workers.
  )
  if refusal:
    raise FrontierError(refusal)
  executor = make_executor(options)
  os.makedirs(options.out_dir, exist_ok=True)
  plan = (
    f"seeds auto: {sequential.START} each, then more where the verdict is undecided, "
    f"up to {options.max_seeds}"
    if options.auto_seeds
    else f"{len(options.seeds)} seeds = {len(settings) * len(options.seeds)} runs"
  )
  log(
    f"frontier: {len(settings)} settings x {plan}, from {options.experiment}, "
    f"{executor.describe()}; logs in {os.path.join(options.out_dir, 'logs')}"
  )
  start, lock = time.perf_counter(), threading.Lock()
  done: list = []
  runs: list = []
  failures: list = []

  def work(pair: tuple, env: dict) -> dict:
    name, seed = pair
    return train_and_evaluate(by_name[name], seed, options, experiment_path, env)

  def run_round(pairs: list) -> list:
    """Trains and judges (setting name, seed) pairs; progress as each finishes."""
    planned = len(done) + len(pairs)
    finished: list = []
    run_dirs = [by_name[name].run_dir(options.out_dir, seed) for name, seed in pairs]
    frontier_cache.say_stale(run_dirs, options.autoattack, log)

    def report(pair: tuple, outcome: dict) -> None:
      name, seed = pair
      with lock:
        if "error" in outcome:
          failures.append(f"{name} seed {seed}: {outcome['error']}")
          log(f"frontier: FAILED {name} seed {seed} (on {outcome['node']}): {outcome['error']}")
          return
        run = outcome["run"]
        finished.append(run)
        done.append(pair)
        elapsed = time.perf_counter() - start
        eta = elapsed / len(done) * (planned - len(done))
        node = "" if executor.name == "local" else f" on {outcome['node']}"
        log(
          f"frontier: [{len(done)}/{planned}] {name} seed {seed}: "
          f"clean {run['clean']:.4f}, AutoAttack {run['autoattack']:.4f} "
          f"({outcome['seconds']:.0f} s{node}; {elapsed:.0f} s elapsed, ETA {eta:.0f} s"
          f"{' for this round' if options.auto_seeds else ''})"
        )

    executor.run(pairs, work, report)
    runs.extend(finished)
    return finished

  if options.auto_seeds:
    analysis = sequential.decide(
      [{"name": s.name, "method": s.method} for s in settings],
      run_round,
      options.max_seeds,
      log=log,
      detect=options.detect / 100 or None,
    )
  else:
    run_round([(s.name, seed) for s in settings for seed in options.seeds])
    analysis = None
  if not runs:
    raise FrontierError("no run finished: " + "; ".join(failures))
  norms = sorted({r["norm"] for r in runs})
  aa_eps = sorted({round(r["aa_eps"], 9) for r in runs})
  if len(norms) > 1 or len(aa_eps) > 1:
    raise FrontierError(
      f"the runs were judged in different threat models ({norms}, eps {aa_eps}); use one --aa_eps"
    )
  order = {name: i for i, name in enumerate(by_name)}
  runs.sort(key=lambda r: (order[r["setting"]], r["seed"]))
  if analysis is None:
    analysis = frontier.analyse(runs, detect=options.detect / 100 or None)
  payload = {
    "experiment": options.experiment,
    "norm": norms[0],
    "aa_eps": aa_eps[0],
    "seeds": "auto" if options.auto_seeds else list(options.seeds),
    **analysis,
    "runs": runs,
    "failures": failures,
    "seconds": round(time.perf_counter() - start, 1),
  }
  run_io.write_json(os.path.join(options.out_dir, "frontier.json"), payload)
  md = frontier_words.page(payload)
  run_io.atomic_write_bytes(os.path.join(options.out_dir, "frontier.md"), md.encode())
  frontier_plot.plot_frontier(
    analysis, os.path.join(options.out_dir, "frontier.png"), aa_eps=aa_eps[0], norm=norms[0]
  )
  for line in analysis["verdict"]:
    log(f"frontier: {line}")
  if failures:
    log(
      f"frontier: {len(failures)} run(s) failed (see their logs); "
      "rerun the same command to retry them"
    )
  log(f"frontier: wrote {options.out_dir} ({payload['seconds']:.0f} s)")
  return payload
