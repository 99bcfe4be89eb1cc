"""Shared pieces of the benchmarks: variants, trainers, round-robin timing, memory.

Every section (step_time.py, alg2_speed.py, real_models.py, ...) describes
what it times as `Group`s of `Variant`s of one `ModelSpec`; `time_group`
builds a trainer per variant, warms up its compiled train function, then
times the variants round-robin (repeat r of every variant, then repeat
r+1, ...) so background load on a shared machine hits all of them alike.
A variant's step time is the median over repeats.
"""

import dataclasses
import math
import os
import platform
import resource
import statistics
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow loads.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top

from iaat_tf import models  # noqa: E402  pylint: disable=g-import-not-at-top
from iaat_tf import run_io  # noqa: E402  pylint: disable=g-import-not-at-top
from iaat_tf.training.trainer import AdversarialTrainer  # noqa: E402  pylint: disable=g-import-not-at-top
from iaat_tf.config import AttackConfig, MethodConfig, ModelConfig  # noqa: E402  pylint: disable=g-import-not-at-top

METHODS = ("standard", "pgd_at", "iaat", "iaat_cheap")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  key: str
  model: ModelConfig
  shape: tuple
  batch: int
  dataset: str  # For the standardisation statistics only.
  num_classes: int = 10


@dataclasses.dataclass(frozen=True)
class Variant:
  """One configuration of the train step.

  `jit`: "none", "attack" (XLA on the PGD function) or "step" (the whole
  train step). `method_options`: MethodConfig overrides, e.g.
  (("probe_steps", 3),). `state`: "random" (a fresh model on random labels)
  or "robust" (labels = class 0 and a huge class-0 bias: every example is
  clean-correct and no attack ever succeeds, the worst case for probes that
  stop early or skip decided examples).
  """

  method: str
  k: int
  jit: str = "none"
  steps_per_execution: int = 1
  precision: str = "float32"
  method_options: Tuple[Tuple[str, object], ...] = ()
  state: str = "random"
  name: str = ""
  run_dir: str = ""  # state "trained": a finished run's checkpoint, eps table, data.
  attack: str = "pgd"  # The training attack: pgd (k steps) or fgsm_rs (k = 1).

  @property
  def label(self) -> str:
    if self.name:
      return f"{self.name} k={self.k}"
    extra = (
      (f" xla-{self.jit}" if self.jit != "none" else "")
      + (f" spe={self.steps_per_execution}" if self.steps_per_execution > 1 else "")
      + (f" {self.precision}" if self.precision != "float32" else "")
      + (f" {self.state}" if self.state != "random" else "")
    )
    if self.attack != "pgd":
      return f"{self.method} {self.attack}{extra}"
    return f"{self.method} k={self.k}{extra}"


@dataclasses.dataclass(frozen=True)
class Group:
  """Variants of one model, timed round-robin against each other."""

  spec: ModelSpec
  variants: Sequence[Variant]
  repeats: int
  repeat_seconds: float  # Target length of one timed repeat.
  max_steps: int = 50
  section: str = "step_time"


# -- machine and memory ----------------------------------------------------------


def status_mb(field: str) -> Optional[float]:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return None


def reset_peak_rss() -> bool:
  """Resets the kernel's peak-RSS mark (VmHWM) of this process, if allowed."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def maxrss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux.


def gpu_names() -> List[str]:
  return [d.name for d in tf.config.list_logical_devices("GPU")]


def device_memory() -> Dict[str, object]:
  """TensorFlow's allocator statistics: the GPU's when present, else the CPU's.

  On a CPU this counts TensorFlow's tensors only, not the whole process
  (see the peak RSS for that).
  """
  device = "GPU:0" if gpu_names() else "CPU:0"
  try:
    info = tf.config.experimental.get_memory_info(device)
    note = "TensorFlow does not track CPU allocations (returns 0)" if not info.get("peak") else ""
    return {
      "device": device,
      "current_mb": info["current"] / 2**20,
      "peak_mb": info["peak"] / 2**20,
      "note": note,
    }
  except (ValueError, RuntimeError) as e:
    return {"device": device, "error": str(e).splitlines()[0]}


def reset_device_peak() -> None:
  """Resets the peak of TensorFlow's allocator (GPU:0, else CPU:0)."""
  for device in ("GPU:0",) if gpu_names() else ("CPU:0",):
    try:
      tf.config.experimental.reset_memory_stats(device)
    except (ValueError, RuntimeError):
      pass


def machine() -> dict:
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
  except OSError:
    pass
  gpus = []
  for d in tf.config.list_physical_devices("GPU"):
    try:
      gpus.append(tf.config.experimental.get_device_details(d).get("device_name", d.name))
    except (ValueError, RuntimeError):
      gpus.append(d.name)
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  return {
    "cpu": cpu,
    "cores": os.cpu_count(),
    "python": platform.python_version(),
    "tensorflow": tf.__version__,
    "keras": keras.__version__,
    "gpus": len(gpus),
    "gpu_names": gpus,
    "load_average_at_start": load,
    "hostname_hash": hash(platform.node()) & 0xFFFF,
  }


# -- trainers ----------------------------------------------------------------------


def random_batches(spec: ModelSpec, num_batches: int = 4, robust: bool = False) -> tf.data.Dataset:
  """A few distinct in-memory batches, repeated: no input-pipeline cost."""
  n = spec.batch * num_batches
  rng = np.random.RandomState(0)
  x = rng.rand(n, *spec.shape).astype(np.float32)
  y = (np.zeros(n) if robust else rng.randint(0, spec.num_classes, n)).astype(np.int64)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(n)}, y))
  return ds.batch(spec.batch, drop_remainder=True).cache().repeat()


def make_robust(classifier: keras.Model) -> None:
  """Adds 1e4 to class 0's logit bias: nothing can flip class 0."""
  last = next(l for l in reversed(classifier.layers) if getattr(l, "bias", None) is not None)
  bias = last.bias.numpy()
  bias[0] += 1e4
  last.bias.assign(bias)


def _run_config(run_dir: str):
  import json  # pylint: disable=g-import-not-at-top

  with open(os.path.join(run_dir, "config.json")) as f:
    return run_io.config_from_dict(json.load(f))


def _run_num_train(run_dir: str) -> int:
  return int(np.load(os.path.join(run_dir, "eps_table.npy")).shape[0])


def build_trainer(
  spec: ModelSpec, variant: Variant, num_examples: int, learning_rate: float = 0.01
):
  keras.utils.set_random_seed(0)
  keras.mixed_precision.set_global_policy(variant.precision)
  try:
    classifier = models.build_classifier(spec.model, spec.shape, spec.num_classes, spec.dataset)
    if variant.state == "robust":
      make_robust(classifier)
    if variant.state != "random":
      learning_rate = 0.0  # Keep the state (robust, or a trained run's).
    # warmup_epochs=0: `iaat` runs Algorithm 2 from the first step.
    method = MethodConfig(
      method=variant.method,
      eps=8 / 255,
      warmup_epochs=0,
      gamma=2 / 255,
      **dict(variant.method_options),
    )
    attack = AttackConfig(
      steps=variant.k, step_ratio=0.25, min_step=2 / 255, jit_compile=variant.jit == "attack"
    )
    if variant.attack == "fgsm_rs":
      attack = AttackConfig.fgsm_rs(jit_compile=variant.jit == "attack")
    if variant.state == "trained":  # The run's radius settings and attack.
      num_examples = _run_num_train(variant.run_dir)
      run_config = _run_config(variant.run_dir)
      method = dataclasses.replace(
        run_config.method, method=variant.method, warmup_epochs=0, **dict(variant.method_options)
      )
      attack = dataclasses.replace(
        run_config.attack, steps=variant.k, jit_compile=variant.jit == "attack"
      )
    trainer = AdversarialTrainer(classifier, num_examples, method, attack)
    if variant.method in ("iaat", "iaat_cheap"):
      trainer.eps_table.assign(tf.fill([num_examples], 8 / 255))
    trainer.compile(
      optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
      steps_per_execution=variant.steps_per_execution,
      jit_compile=variant.jit == "step",
    )
  finally:
    keras.mixed_precision.set_global_policy("float32")
  return trainer


def trained_state(trainer, spec: ModelSpec, run_dir: str) -> tf.data.Dataset:
  """Loads a finished run's weights and eps table; returns its training batches.

  The learning rate is 0 (see build_trainer), so every timed step sees the
  end-of-training decisions of that run.
  """
  from iaat_tf import data  # pylint: disable=g-import-not-at-top

  run_config = _run_config(run_dir)
  tf.train.Checkpoint(classifier=trainer.classifier).restore(
    tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
  ).expect_partial()
  table = np.load(os.path.join(run_dir, "eps_table.npy"))
  trainer.eps_table.assign(table)
  datasets = data.load_datasets(dataclasses.replace(run_config.data, batch_size=spec.batch))
  return datasets.train.repeat()


class Timed:
  """One variant's trainer, iterator and timings."""

  def __init__(self, spec: ModelSpec, variant: Variant):
    self.spec, self.variant = spec, variant
    ds = random_batches(spec, robust=variant.state == "robust")
    start = time.perf_counter()
    self.trainer = build_trainer(spec, variant, spec.batch * 4)
    if variant.state == "trained":
      ds = trained_state(self.trainer, spec, variant.run_dir)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      self.trainer.fit(
        ds, steps_per_epoch=variant.steps_per_execution, epochs=1, verbose=0
      )  # Builds everything and traces the step.
    self.iterator = iter(ds)
    self.call()  # Second warmup call: steady state from here on.
    self.first_call_seconds = time.perf_counter() - start
    start = time.perf_counter()
    self.call()
    self.estimate = (time.perf_counter() - start) / variant.steps_per_execution
    self.step_seconds: List[float] = []
    self.steps_per_repeat = 1

  def call(self) -> None:
    logs = self.trainer.train_function(self.iterator)
    float(logs["loss"])  # Waits for the step (and checks it returned).

  def plan(self, repeat_seconds: float, max_steps: int) -> None:
    spe = self.variant.steps_per_execution
    steps = max(1, min(max_steps, math.ceil(repeat_seconds / max(self.estimate, 1e-6))))
    self.steps_per_repeat = spe * max(1, round(steps / spe))

  def repeat(self) -> None:
    calls = self.steps_per_repeat // self.variant.steps_per_execution
    start = time.perf_counter()
    for _ in range(calls):
      self.call()
    self.step_seconds.append((time.perf_counter() - start) / self.steps_per_repeat)

  def result(self) -> dict:
    median = statistics.median(self.step_seconds)
    v = self.variant
    return {
      "model": self.spec.key,
      "shape": list(self.spec.shape),
      "batch": self.spec.batch,
      "method": v.method,
      "k": v.k,
      "jit_compile": v.jit,
      "steps_per_execution": v.steps_per_execution,
      "precision": v.precision,
      "method_options": dict(v.method_options),
      "state": v.state,
      "name": v.name,
      "label": v.label,
      "step_seconds_median": median,
      "step_seconds_min": min(self.step_seconds),
      "step_seconds_max": max(self.step_seconds),
      "images_per_second": self.spec.batch / median,
      "repeats": len(self.step_seconds),
      "steps_per_repeat": self.steps_per_repeat,
      "warmup_seconds": self.first_call_seconds,
    }


def time_group(group: Group, log) -> dict:
  """Warms up every variant, then times them round-robin; memory per group."""
  rss_before = status_mb("VmRSS")
  timed, failed = [], []
  for variant in group.variants:
    variant_reset = reset_peak_rss()
    reset_device_peak()
    try:
      t = Timed(group.spec, variant)
    except (tf.errors.OpError, ValueError, RuntimeError) as e:  # e.g. XLA refuses.
      message = str(e).strip().splitlines()[0][:200]
      log(f"  FAIL {group.spec.key:14s} {variant.label:34s} {message}")
      failed.append({"model": group.spec.key, "label": variant.label, "error": message})
      continue
    # Peak memory while building and warming up this variant (3 steps).
    t.memory = {
      "peak_rss_mb": status_mb("VmHWM") if variant_reset else None,
      "device": device_memory(),
    }
    t.plan(group.repeat_seconds, group.max_steps)
    log(
      f"  warm {group.spec.key:14s} {variant.label:34s} "
      f"{t.estimate * 1000:9.1f} ms/step (first calls {t.first_call_seconds:.1f}s)"
    )
    timed.append(t)
  for _ in range(group.repeats):
    for t in timed:
      t.repeat()
  results = []
  for t in timed:
    results.append(
      {
        **t.result(),
        "section": group.section,
        "warmup_peak_rss_mb": t.memory["peak_rss_mb"],
        "warmup_device_memory": t.memory["device"],
      }
    )
  for r in results:
    log(
      f"  {r['model']:14s} {r['label']:34s} {r['step_seconds_median'] * 1000:9.1f} ms/step "
      f"{r['images_per_second']:9.1f} img/s  (x{r['repeats']} of {r['steps_per_repeat']} steps)"
    )
  memory = {
    "rss_before_mb": rss_before,
    "peak_rss_mb": max((r["warmup_peak_rss_mb"] or 0 for r in results), default=None),
    "peak_rss_note": "largest peak of a variant's build + warmup (VmHWM)",
    "maxrss_mb_so_far": maxrss_mb(),
    "device_memory": device_memory(),
  }
  del timed
  keras.backend.clear_session()
  return {
    "model": group.spec.key,
    "section": group.section,
    "results": results,
    "failed": failed,
    "memory": memory,
  }


def find(rows, model, method, k, jit="none", spe=1, precision="float32", name="", state="random"):
  for r in rows:
    if (
      r["model"],
      r["method"],
      r["k"],
      r["jit_compile"],
      r["steps_per_execution"],
      r["precision"],
      r["name"],
      r["state"],
    ) == (model, method, k, jit, spe, precision, name, state):
      return r
  return None


def fmt(value, digits=2):
  return "n/a" if value is None else f"{value:.{digits}f}"
