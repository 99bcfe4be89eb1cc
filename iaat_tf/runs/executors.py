"""Where the frontier's runs execute: local processes in device slots, or Ray tasks.

A run is `work(pair, env)`: train and judge one (setting, seed) in child
processes whose environment is `env` (runs/frontier_run.py). Both executors
call `report(pair, outcome)` in the driver once per run, in the order runs
finish; `outcome` is {"run", "seconds", "node"} or {"error", "node"}.

* `LocalExecutor` (the default): `jobs` runs at a time on this machine,
  each holding its own device slot (training/devices.py).
* `RayExecutor` (`--executor=ray`, the `[ray]` extra): every run is a Ray
  task asking for `gpus_per_run` GPUs and `cpus_per_run` CPUs, so the same
  command runs on a laptop (`ray.init()` starts a local cluster), a
  multi-GPU box or a Ray cluster (`--ray_address`). Ray gives a GPU task
  its GPUs (CUDA_VISIBLE_DEVICES). Run directories must be on storage every
  worker shares (`--out_dir` on a shared filesystem). A worker that dies has
  its task retried (`max_retries`): the rerun resumes the run from its last
  checkpoint, as a rerun of the command does; a run that fails is reported
  with its log and the node it ran on, and the others go on. Ray's own
  lines (its notices, the raylet's "worker died" messages) go to
  `log_dir`/ray.log in plain text, never to the terminal, whose lines stay
  the frontier's own (`_ray_lines_to`).
"""

import logging
import os
import re
import socket
import time
from typing import Callable, Optional, Sequence

from iaat_tf.training import devices
from iaat_tf.options import first_line

Work = Callable[[tuple, dict], dict]
Report = Callable[[tuple, dict], None]
# Errors of a run itself (its command failed, its results are unreadable):
# reported, not retried.
RUN_ERRORS: tuple = (RuntimeError, KeyError, ValueError, OSError)


RAY_LOG = "ray.log"  # Ray's own lines, in the frontier's logs folder.


def plain(text: str) -> str:
  """`text` without terminal colour codes."""
  return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _last_line(error: BaseException) -> str:
  """A Ray error's last line (the cause), without terminal colours."""
  lines = [l for l in plain(str(error)).splitlines() if l.strip()]
  return lines[-1].strip() if lines else type(error).__name__


class _PlainFileHandler(logging.FileHandler):
  """A log file without colour codes, whatever formatter Ray gives it."""

  def format(self, record: logging.LogRecord) -> str:
    return plain(super().format(record))


def _ray_lines_to(path: str, ray) -> None:
  """Sends Ray's own lines in this process to `path`, in plain text.

  Two kinds reach a driver: its Python logger's ("ray": the token notice,
  "Started a local Ray instance"), and the raylet's messages (a worker that
  died, a task retried), which Ray prints in colour to stdout through
  `ray._private.worker.print_to_stdstream`, with no public switch; both go
  to the file. Without that function (another Ray), RAY_COLOR_PREFIX=0 at
  least keeps them plain.
  """
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  handler = _PlainFileHandler(path)
  logger = logging.getLogger("ray")
  for old in list(logger.handlers):
    logger.removeHandler(old)
  logger.addHandler(handler)
  logger.propagate = False
  os.environ.setdefault("RAY_COLOR_PREFIX", "0")
  worker = getattr(getattr(ray, "_private", None), "worker", None)
  if worker is not None and hasattr(worker, "print_to_stdstream"):

    def to_file(data, *args, **kwargs):
      del args, kwargs
      with open(path, "a") as f:
        for line in data.get("lines", []):
          f.write(f"({data.get('pid', 'ray')}) {plain(str(line))}\n")

    worker.print_to_stdstream = to_file


class ExecutorError(ValueError):
  """An executor that cannot start (Ray missing, no cluster); one line."""


def _attempt(work: Work, pair: tuple, env: dict) -> dict:
  began = time.perf_counter()
  node = socket.gethostname()
  try:
    run = work(pair, env)
  except RUN_ERRORS as e:
    return {"error": str(e), "node": node}
  return {"run": run, "seconds": time.perf_counter() - began, "node": node}


class LocalExecutor:
  """`workers` runs at a time, each in its own device slot."""

  name = "local"

  def __init__(self, available: Sequence[devices.Slot], workers: int, growth: bool = True):
    self.available, self.workers, self.growth = available, workers, growth

  def describe(self) -> str:
    if self.available == [None]:
      return f"{self.workers} at a time on CPU"
    slots = " ".join(",".join(s) for s in self.available if s is not None)
    return f"{self.workers} at a time in GPU slots {slots}"

  def run(self, pairs: Sequence[tuple], work: Work, report: Report) -> None:
    def one(pair, slot):
      report(pair, _attempt(work, pair, devices.child_env(slot, growth=self.growth)))

    devices.run_in_slots(list(pairs), one, self.available, self.workers)


def _remote_attempt(work: Work, pair: tuple, growth: bool) -> dict:
  """A Ray task: the run in this worker's environment (Ray set its GPUs)."""
  import os  # pylint: disable=g-import-not-at-top

  return _attempt(work, pair, devices.child_env(None, os.environ, growth))


class RayExecutor:
  """Every run a Ray task with its GPUs and CPUs; retried if its worker dies."""

  name = "ray"

  def __init__(
    self,
    address: Optional[str],
    gpus_per_run: int,
    cpus_per_run: float = 1.0,
    growth: bool = True,
    max_retries: int = 3,
    init_kwargs: Optional[dict] = None,
    log_dir: Optional[str] = None,
  ):
    try:
      import ray  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ExecutorError(
        '--executor=ray needs Ray: pip install "iaat_tf[ray]" (or pip install ray)'
      ) from None
    self.ray = ray
    self.log_path = os.path.join(log_dir, RAY_LOG) if log_dir else None
    if self.log_path:
      _ray_lines_to(self.log_path, ray)
    if not ray.is_initialized():
      try:
        ray.init(
          address=address or None,
          include_dashboard=False,
          log_to_driver=False,
          **(init_kwargs or {}),
        )
      except (ConnectionError, RuntimeError, ValueError) as e:
        raise ExecutorError(
          f"--ray_address={address}: cannot join the cluster ({first_line(e)})"
        ) from None
    # A cluster without GPUs would never schedule a task that asks for one.
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    self.gpus_per_run = gpus_per_run if has_gpus else 0
    self.cpus_per_run = cpus_per_run
    self.growth, self.max_retries = growth, max_retries
    self._task = ray.remote(_remote_attempt)

  def describe(self) -> str:
    resources = self.ray.cluster_resources()
    return (
      f"as Ray tasks ({self.gpus_per_run} GPU, {self.cpus_per_run:g} CPU each) on a cluster "
      f"of {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs"
      + (f" (Ray's own messages: {self.log_path})" if self.log_path else "")
    )

  def run(self, pairs: Sequence[tuple], work: Work, report: Report) -> None:
    task = self._task.options(
      num_gpus=self.gpus_per_run,
      num_cpus=self.cpus_per_run,
      max_retries=self.max_retries,
      retry_exceptions=False,
    )
    pending = {task.remote(work, pair, self.growth): pair for pair in pairs}
    while pending:
      ready, _ = self.ray.wait(list(pending), num_returns=1)
      pair = pending.pop(ready[0])
      try:
        outcome = self.ray.get(ready[0])
      except self.ray.exceptions.RayError as e:  # E.g. its worker died every try.
        outcome = {"error": f"its Ray task failed: {_last_line(e)}", "node": "?"}
      report(pair, outcome)

  def shutdown(self) -> None:
    self.ray.shutdown()
