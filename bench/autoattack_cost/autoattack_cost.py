"""Cost of AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square): seconds per
1,000 examples for a trained run, and how it scales with the number of
classes (synthetic models, eps = 0 so every example survives every attack:
the worst case, where each attack does all its iterations and queries).

    python -m bench.autoattack_cost.autoattack_cost --run_dir=/tmp/aa_qs --out=bench/autoattack_cost/autoattack_results.md
"""

import argparse
import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from iaat_tf import data
from iaat_tf.evaluation import autoattack
from iaat_tf.models import export
from iaat_tf import run_io


def _per_1000(report):
  n = max(report.num_examples, 1)
  return {k: v * 1000.0 / n for k, v in report.seconds.items()}


def run_dir_cost(run_dir, batch_size):
  with open(os.path.join(run_dir, "config.json")) as f:
    config = run_io.config_from_dict(json.load(f))
  data_cfg = dataclasses.replace(config.data, augment=False, max_eval_examples=0)
  datasets = data.load_datasets(data_cfg)
  logits_fn = export.load_classifier(os.path.join(run_dir, "saved_model"))
  start = time.time()
  report = autoattack.run_autoattack(
    logits_fn,
    datasets.test,
    eps=config.validation.eps,
    options=autoattack.AutoAttackOptions(batch_size=batch_size, seed=config.seed),
    dataset=config.data.dataset,
  )
  return report, time.time() - start


def synthetic_cost(num_classes, n, batch_size, square_queries):
  keras.utils.set_random_seed(num_classes)
  model = keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      keras.layers.Conv2D(16, 3, activation="relu"),
      keras.layers.Flatten(),
      keras.layers.Dense(num_classes),
    ]
  )
  x = np.random.RandomState(0).rand(n, 8, 8, 1).astype(np.float32)
  y = model(x).numpy().argmax(-1)  # All correct.
  start = time.time()
  report = autoattack.run_autoattack(
    lambda z: model(z, training=False),
    x,
    y,
    eps=0.0,
    options=autoattack.AutoAttackOptions(batch_size=batch_size, square_queries=square_queries),
  )
  return report, time.time() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--run_dir", default="/tmp/aa_qs")
  parser.add_argument("--out", default="bench/autoattack_cost/autoattack_results.md")
  parser.add_argument("--batch_size", type=int, default=500)
  parser.add_argument("--synthetic_examples", type=int, default=100)
  parser.add_argument("--classes", default="3,10,100")
  parser.add_argument("--square_queries", type=int, default=5000)
  args = parser.parse_args()
  lines = [
    "# AutoAttack cost",
    "",
    f"`python -m bench.autoattack_cost.autoattack_cost` on {os.cpu_count()} CPU cores "
    "(shared with other jobs: the machine was busy, treat the figures "
    "as upper bounds), TensorFlow " + tf.__version__ + ".",
    "",
  ]
  if os.path.isdir(args.run_dir):
    report, total = run_dir_cost(args.run_dir, args.batch_size)
    lines += [
      f"## Quick-start model ({args.run_dir}, digits test split, "
      f"{report.num_examples} examples, eps {report.eps:.3g})",
      "",
      f"clean {report.clean_accuracy:.4f}, AutoAttack robust "
      f"{report.robust_accuracy:.4f}; after each attack: "
      + json.dumps({k: round(v, 4) for k, v in report.accuracy_after.items()}),
      "",
      f"total {total:.1f} s = **{total * 1000 / report.num_examples:.0f}"
      " s per 1,000 examples**; per attack (s per 1,000): "
      + json.dumps({k: round(v, 1) for k, v in _per_1000(report).items()}),
      "",
    ]
  lines += [
    "## Scaling with the number of classes",
    "",
    f"Synthetic conv net on 8x8x1 random images, {args.synthetic_examples} "
    "examples, eps 0 (nothing is broken, so every attack runs in "
    f"full: the cost of a robust example), Square {args.square_queries} "
    "queries, targets = min(9, classes - 1).",
    "",
    "| classes | targets | s per 1,000 examples | apgd-ce | apgd-t | fab-t | square |",
    "|---|---|---|---|---|---|---|",
  ]
  for k in (int(c) for c in args.classes.split(",")):
    report, total = synthetic_cost(k, args.synthetic_examples, args.batch_size, args.square_queries)
    per = _per_1000(report)
    lines.append(
      f"| {k} | {min(9, k - 1)} | {total * 1000 / report.num_examples:.0f} | "
      + " | ".join(f"{per[a]:.0f}" for a in autoattack.STANDARD)
      + " |"
    )
    print(lines[-1], flush=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
