"""Evaluation cost: seconds per 1,000 test examples of the robustness suite.

Times `robustness.evaluate_robustness` with `python -m iaat_tf.evaluate`'s
default attacks (PGD-20 with CE and CW-margin losses, APGD-CE and APGD-DLR
with 100 iterations) at one radius, on random images with the "robust"
classifier state of bench/common.py (every example clean-correct and never
broken, so no attack stops early: an upper bound), and scales to 1,000
examples.

AutoAttack: another component adds it; register its entry point in
`EVALUATIONS` (a function (logits_fn, dataset, eps) -> anything) and this
benchmark times it the same way.
"""

import time
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from bench import common
from bench.common import ModelSpec
from iaat_tf import models
from iaat_tf.evaluation import autoattack, robustness
from iaat_tf.training import recipe
from iaat_tf.config import ModelConfig

EPS = 8 / 255


def robustness_suite(logits_fn, dataset, eps):
  return robustness.evaluate_robustness(
    logits_fn, dataset, [eps], pgd_steps=20, losses=("ce", "margin"), apgd=True, apgd_iters=100
  )


def autoattack_standard(logits_fn, dataset, eps):
  return autoattack.run_autoattack(logits_fn, dataset, eps=eps)


# name -> (logits_fn, dataset, eps) -> result. None: not available yet.
EVALUATIONS: Dict[str, Optional[Callable]] = {
  "robustness_suite (PGD-20 CE+margin, APGD-CE/DLR-100)": robustness_suite,
  "autoattack standard (APGD-CE, APGD-T, FAB-T, Square-5000)": autoattack_standard,
}


def _robust_classifier(spec: ModelSpec):
  keras.utils.set_random_seed(0)
  classifier = models.build_classifier(spec.model, spec.shape, spec.num_classes, spec.dataset)
  common.make_robust(classifier)
  return classifier


def time_evaluation(name: str, fn: Callable, spec: ModelSpec, n: int, log) -> dict:
  classifier = _robust_classifier(spec)
  logits_fn = recipe.attack_logits_fn(classifier, "inference")
  x = np.random.RandomState(0).rand(n, *spec.shape).astype(np.float32)
  y = np.zeros(n, np.int64)
  ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(n)}, y))
  ds = ds.batch(spec.batch)
  fn(logits_fn, ds.take(1), EPS)  # Traces the attacks.
  start = time.perf_counter()
  fn(logits_fn, ds, EPS)
  seconds = time.perf_counter() - start
  result = {
    "evaluation": name,
    "model": spec.key,
    "batch": spec.batch,
    "examples": n,
    "seconds": seconds,
    "seconds_per_1000": seconds / n * 1000,
  }
  log(
    f"  eval {name[:40]:40s} {spec.key:16s} {result['seconds_per_1000']:10.1f} s / 1000 "
    f"examples ({n} timed)"
  )
  keras.backend.clear_session()
  return result


def plan(quick: bool):
  digits = ModelSpec("small_cnn_8x8", ModelConfig("small_cnn"), (8, 8, 1), 256, "digits")
  if quick:
    return [(digits, 256)]
  wrn16 = ModelSpec(
    "wrn_16_2_32x32", ModelConfig("wide_resnet", depth=16, width=2), (32, 32, 3), 32, "cifar10"
  )
  wrn32 = ModelSpec(
    "wrn_32_10_32x32", ModelConfig("wide_resnet", depth=32, width=10), (32, 32, 3), 2, "cifar10"
  )
  return [(digits, 1024), (wrn16, 32), (wrn32, 2)]


# AutoAttack on a classifier no attack breaks runs every one of its ~2,000
# iterations per example (APGD-T and FAB-T over 9 targets, Square's 5,000
# queries): on WRN-32-10 on 2 CPU cores that is hours, twice (the first call
# traces). It is timed on the smaller models only; on a GPU, every model.
SKIP_ON_CPU = {"autoattack standard (APGD-CE, APGD-T, FAB-T, Square-5000)": ("wrn_32_10_32x32",)}


def run(quick: bool, log) -> List[dict]:
  out = []
  gpu = bool(common.gpu_names())
  for name, fn in EVALUATIONS.items():
    if fn is None:
      out.append({"evaluation": name, "note": "not available yet (hook in bench/eval_cost.py)"})
      continue
    for spec, n in plan(quick):
      if not gpu and spec.key in SKIP_ON_CPU.get(name, ()):
        out.append(
          {
            "evaluation": name,
            "model": spec.key,
            "note": "not timed on a CPU (hours: every iteration of every attack runs)",
          }
        )
        continue
      out.append(time_evaluation(name, fn, spec, n, log))
  return out


def report_lines(results: List[dict]) -> List[str]:
  if not results:
    return []
  lines = [
    "## Evaluation cost",
    "",
    "Seconds per 1,000 test examples at one radius (random images, a classifier "
    "no attack can break: every attack runs all its iterations, an upper bound). "
    "On a CPU the large models are timed on a few examples and scaled.",
    "",
    "| evaluation | model | batch | examples timed | s / 1000 examples |",
    "|---|---|---:|---:|---:|",
  ]
  for r in results:
    if "note" in r:
      lines.append(f"| {r['evaluation']} | {r.get('model', '')} | | | {r['note']} |")
    else:
      lines.append(
        f"| {r['evaluation']} | {r['model']} | {r['batch']} | {r['examples']} | "
        f"{r['seconds_per_1000']:.1f} |"
      )
  return lines + [""]
