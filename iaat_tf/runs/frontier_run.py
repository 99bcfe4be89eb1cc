"""The frontier job: what `iaat-frontier` does, callable from Python.

    from iaat_tf import runs
    runs.frontier(runs.FrontierConfig(experiment="quickstart", out_dir="runs/f",
                                      pgd_at_eps=(0.1, 0.2, 0.3), iaat=("eps=0.3",)))

`frontier(options)` checks the frontier (runs/frontier_config.py) and every
run's training flags against its run directory before any run starts
(runs/frontier_cache.py), trains uniform PGD-AT at every radius and every
adaptive setting for every seed (or the seeds `--seeds=auto` asks for,
reports/sequential.py), `jobs` at a time or on Ray (runs/frontier_jobs.py,
runs/executors.py), skips what a previous call finished, and writes
frontier.json, frontier.md and frontier.png (reports/frontier.py computes
the verdict). Progress: one line per finished run.
"""

import os
import threading
import time
from typing import Callable

from iaat_tf import run_io
from iaat_tf.runs import frontier_cache
from iaat_tf.runs.frontier_config import FrontierConfig, FrontierError, check
from iaat_tf.runs.frontier_jobs import make_executor, train_and_evaluate, train_args


def frontier(options: FrontierConfig, log: Callable[[str], None] = print) -> dict:
  """Trains, evaluates and analyses every (setting, seed); returns frontier.json."""
  from iaat_tf.runs import flagfiles  # pylint: disable=g-import-not-at-top
  from iaat_tf.reports import (  # pylint: disable=g-import-not-at-top
    frontier,
    frontier_plot,
    frontier_words,
    sequential,
  )

  settings = check(options)
  try:
    experiment_path = os.path.abspath(flagfiles.resolve(options.experiment))
  except flagfiles.FlagfileError as e:
    raise FrontierError(str(e).replace("--flagfile", "--experiment")) from None
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
