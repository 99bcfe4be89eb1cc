"""The process's devices: the distribution strategy, and device slots for runs side by side.

* One training or evaluation process: `configure_devices` (virtual CPU
  devices, for tests) and `make_strategy` (one device, `MirroredStrategy`
  over local GPUs or virtual CPUs, `MultiWorkerMirroredStrategy` from
  TF_CONFIG).
* Several trainings at once (`iaat-frontier --jobs`): TensorFlow takes all
  the memory of every GPU it sees, per process, so each run gets its own
  GPUs. The machine's GPUs are cut into slots of `gpus_per_run`, a run holds
  one slot while it trains and evaluates, and its child processes see only
  that slot's GPUs (`CUDA_VISIBLE_DEVICES`). Two runs never hold the same
  slot. On a machine without GPUs there is one slot with no devices and
  nothing changes: the children inherit the environment.
* Every command sets TensorFlow's memory policy before it loads TensorFlow
  (`memory_env`): memory growth on (`--gpu_memory_growth`, TensorFlow's
  `TF_FORCE_GPU_ALLOW_GROWTH`), so a process takes what it uses, not every
  GPU's whole memory.

Importing this module does not load TensorFlow (the slot functions run in
commands that never do); the strategy functions import it when called.
"""

import json
import os
import queue
import shutil
import subprocess
from typing import Mapping, Optional, Sequence

from iaat_tf.config import ConfigError, TrainConfig


def configure_devices(config: TrainConfig) -> None:
  """Splits the CPU into `num_virtual_devices` logical devices (for tests).

  Must run before TensorFlow initialises its devices; if it already has,
  enough logical CPUs must exist.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  n = config.num_virtual_devices
  if n <= 0:
    return
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * n
    )
  except RuntimeError:
    have = len(tf.config.list_logical_devices("CPU"))
    if have < n:
      raise ConfigError(
        f"--num_virtual_devices={n}: TensorFlow already started with {have} CPU device(s)"
      ) from None


def _keras_multi_worker_strategy():
  """MultiWorkerMirroredStrategy whose `reduce` accepts what Keras 3 passes.

  Keras 3.15's `fit`/`evaluate` call `strategy.reduce("MEAN", v, axis=0)` on
  every scalar per-replica log value, and `strategy.reduce("MEAN", batch)` on
  the nested first batch (to build the model); the stock multi-worker
  strategy rejects both (a scalar has no axis 0; it reduces single tensors
  only). Here rank-0 values are reduced with `axis=None` (their mean over all
  replicas, as MirroredStrategy gives) and nested structures leaf by leaf.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    def reduce(self, reduce_op, value, axis):
      def reduce_one(v):
        first = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
        rank = getattr(getattr(first, "shape", None), "rank", None)
        return super(KerasMultiWorkerStrategy, self).reduce(
          reduce_op, v, None if rank == 0 else axis
        )

      return tf.nest.map_structure(reduce_one, value)

  return KerasMultiWorkerStrategy()


def _check_tf_config() -> None:
  """A malformed TF_CONFIG becomes a one-line ConfigError (before any TF setup)."""
  text = os.environ.get("TF_CONFIG", "")
  if not text:
    return
  try:
    spec = json.loads(text)
  except ValueError:
    raise ConfigError("TF_CONFIG is not valid JSON") from None
  if not isinstance(spec, dict):
    raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
  cluster, task = spec.get("cluster") or {}, spec.get("task") or {}
  if not cluster:
    return
  task_type, index = task.get("type"), task.get("index", 0)
  if (
    task_type not in cluster
    or not isinstance(index, int)
    or not 0 <= index < len(cluster[task_type])
  ):
    raise ConfigError(
      f"TF_CONFIG task {json.dumps(task)} is not in its cluster "
      f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())})"
    )


def make_strategy(config: TrainConfig):
  """`default` (one device), `mirrored` (local GPUs or virtual CPUs), `multi_worker`.

  `multi_worker` reads the cluster from the TF_CONFIG environment variable
  (one process per worker, each with its own task; without TF_CONFIG it is a
  one-worker cluster). It must be created before other TensorFlow ops run.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  if config.strategy == "default":
    return tf.distribute.get_strategy()
  if config.strategy == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(cpus)
  if config.strategy == "multi_worker":
    _check_tf_config()
    return _keras_multi_worker_strategy()
  raise ConfigError(f"unknown strategy {config.strategy!r}")


Slot = Optional[tuple]  # GPU ids of one slot; None: no GPUs (CPU only).


class DeviceError(ValueError):
  """Bad --gpus / --gpus_per_run / --jobs; one line."""


def _nvidia_smi_gpus() -> list[str]:
  """Indices of the GPUs `nvidia-smi -L` lists ([] without it)."""
  if shutil.which("nvidia-smi") is None:
    return []
  try:
    out = subprocess.run(
      ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def gpu_ids(spec: str, env: Mapping[str, str] = os.environ, probe=_nvidia_smi_gpus) -> list[str]:
  """The GPUs to share out: `spec` is "auto" (CUDA_VISIBLE_DEVICES when set,
  else the GPUs nvidia-smi lists, else none), "none", or ids like "0,1,2"."""
  spec = spec.strip()
  if spec == "none":
    return []
  if spec == "auto":
    if "CUDA_VISIBLE_DEVICES" in env:
      return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return probe()
  ids = [d.strip() for d in spec.split(",") if d.strip()]
  if not ids or len(set(ids)) != len(ids):
    raise DeviceError(f"--gpus={spec!r}: give auto, none or distinct GPU ids like 0,1,2,3")
  return ids


def slots(ids: Sequence[str], gpus_per_run: int) -> list[Slot]:
  """Consecutive groups of `gpus_per_run` GPUs; [None] (one slot, no
  devices) without GPUs or with `gpus_per_run` 0. GPUs left over after
  the last full group are not used."""
  if gpus_per_run < 0:
    raise DeviceError(f"--gpus_per_run={gpus_per_run} must be >= 0")
  if not ids or gpus_per_run == 0:
    return [None]
  if gpus_per_run > len(ids):
    raise DeviceError(
      f"--gpus_per_run={gpus_per_run} but only {len(ids)} GPU(s) ({','.join(ids)}) are visible"
    )
  count = len(ids) // gpus_per_run
  return [tuple(ids[i * gpus_per_run : (i + 1) * gpus_per_run]) for i in range(count)]


def jobs_for(requested: int, available: Sequence[Slot]) -> int:
  """Runs at a time: `requested`, or with 0 one per slot (1 on CPU). With
  GPUs, never more runs than slots (each run needs its own GPUs)."""
  if requested < 0:
    raise DeviceError(f"--jobs={requested} must be >= 0 (0: one per device slot)")
  gpu_slots = [s for s in available if s is not None]
  if not gpu_slots:
    return requested or 1
  if requested > len(gpu_slots):
    raise DeviceError(
      f"--jobs={requested} but there are {len(gpu_slots)} GPU slot(s) "
      f"({', '.join(','.join(s) for s in gpu_slots)}): each run needs its own GPUs; "
      "lower --jobs or --gpus_per_run"
    )
  return requested or len(gpu_slots)


def memory_env(growth: bool, env: Mapping[str, str] = os.environ) -> dict:
  """The environment variables of TensorFlow's GPU memory policy: growth on
  (a process takes what it uses) or off (TensorFlow's default: all of every
  visible GPU). A value the user exported wins."""
  if "TF_FORCE_GPU_ALLOW_GROWTH" in env:
    return {}
  return {"TF_FORCE_GPU_ALLOW_GROWTH": "true" if growth else "false"}


def child_env(slot: Slot, base: Mapping[str, str] = os.environ, growth: bool = True) -> dict:
  """The environment of a run's processes in `slot`: only its GPUs visible
  (unchanged on CPU), and the memory policy."""
  env = dict(base)
  if slot is not None:
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
  env.update(memory_env(growth, base))
  return env


class SlotPool:
  """Hands out slots to concurrent runs: `with pool.take() as slot:` holds
  one until the block ends; a CPU pool hands out its one slot to any number
  of runs at once."""

  def __init__(self, available: Sequence[Slot]):
    self.cpu = all(s is None for s in available)
    self._free: queue.Queue = queue.Queue()
    for slot in available:
      self._free.put(slot)

  class _Held:
    def __init__(self, pool: "SlotPool"):
      self.pool, self.slot = pool, None

    def __enter__(self) -> Slot:
      if not self.pool.cpu:
        self.slot = self.pool._free.get()
      return self.slot

    def __exit__(self, *exc) -> None:
      if not self.pool.cpu:
        self.pool._free.put(self.slot)

  def take(self) -> "SlotPool._Held":
    return SlotPool._Held(self)


def run_in_slots(items: Sequence, work, available: Sequence[Slot], workers: int) -> None:
  """work(item, slot) for every item, `workers` at a time, each call holding
  its own slot from `available` (on CPU, the one empty slot, shared)."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top

  pool = SlotPool(available)

  def one(item):
    with pool.take() as slot:
      work(item, slot)

  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
    list(executor.map(one, items))
