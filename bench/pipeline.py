"""Input-pipeline throughput: `data.load_datasets` iterated without training.

Compared with the train step's images/s (target: the pipeline is >= 10x
faster than any adversarial train step, so training is never input-bound).
"""

import dataclasses
import os
import tempfile
import time
from typing import List

import numpy as np

from bench import common
from iaat_tf import data
from iaat_tf.config import DataConfig

TARGET = 10.0


def write_npz(path: str, n: int, shape: tuple) -> None:
  rng = np.random.RandomState(0)
  np.savez(
    path,
    x=rng.randint(0, 256, (n, *shape), dtype=np.uint8),
    y=rng.randint(0, 10, n).astype(np.int64),
  )


def time_pipeline(name: str, config: DataConfig, seconds: float, log) -> dict:
  """images/s of the real training pipeline (shuffle, map, batch, prefetch)."""
  ds = data.load_datasets(config).train
  for _ in ds:  # First pass fills the cache.
    pass
  images, epochs, start = 0, 0, time.perf_counter()
  while time.perf_counter() - start < seconds or epochs < 2:
    for batch, _ in ds:
      images += int(batch["image"].shape[0])
    epochs += 1
  elapsed = time.perf_counter() - start
  result = {
    "pipeline": name,
    "dataset": config.dataset,
    "batch": config.batch_size,
    "augment": config.augment,
    "images_per_second": images / elapsed,
    "epochs": epochs,
    "seconds": elapsed,
  }
  log(f"  pipeline {name:28s} {result['images_per_second']:12.0f} img/s ({epochs} epochs)")
  return result


def plan(quick: bool):
  digits = ("digits_8x8", DataConfig(dataset="digits", batch_size=128), "small_cnn_8x8")
  if quick:
    return [digits], 0.5
  return [
    digits,
    (
      "npz_32x32x3_augment_b128",
      DataConfig(dataset="npz", batch_size=128, augment=True),
      "small_cnn_32x32",
    ),
    (
      "npz_32x32x3_augment_b64",
      DataConfig(dataset="npz", batch_size=64, augment=True),
      "wrn_16_2_32x32",
    ),
  ], 3.0


def run(quick: bool, log) -> List[dict]:
  pipelines = []
  plans, seconds = plan(quick)
  with tempfile.TemporaryDirectory() as tmp:
    npz = os.path.join(tmp, "random32.npz")
    write_npz(npz, 12_500, (32, 32, 3))  # 10,000 training images after holdout.
    for name, config, compare in plans:
      if config.dataset == "npz":
        config = dataclasses.replace(config, npz_path=npz)
      result = time_pipeline(name, config, seconds, log)
      result["compare_model"] = compare
      pipelines.append(result)
  return pipelines


def ratios(pipelines: List[dict], rows: List[dict], k_main: int) -> List[dict]:
  out = []
  for p in pipelines:
    for method in ("standard", "pgd_at", "iaat_cheap", "iaat"):
      r = common.find(rows, p["compare_model"], method, k_main)
      if r:
        value = p["images_per_second"] / r["images_per_second"]
        out.append(
          {
            "model": p["compare_model"],
            "k": k_main,
            "name": f"pipeline {p['pipeline']} / {method} train step",
            "value": value,
            "target": f">= {TARGET:.0f}",
            "ok": value >= TARGET,
            "model_cost": None,
          }
        )
  return out


def notes(pipeline_ratios: List[dict]) -> List[str]:
  return [
    f"MISS {r['name']} = {r['value']:.1f} (target >= {TARGET:.0f}): clean training of "
    "this small model is about as fast as the pipeline's per-example work on the same "
    "2 cores; every adversarial method is far below the pipeline's rate, so "
    "adversarial training is not input-bound."
    for r in pipeline_ratios
    if r["ok"] is False
  ]
