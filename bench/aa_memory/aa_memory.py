"""Peak host memory of AutoAttack as the evaluated split grows (one run each).

    python -m bench.aa_memory.aa_memory --out=bench/aa_memory/AA_MEMORY.md [--before=/path/to/old/checkout]

Each measurement is a fresh process (peak RSS, `ru_maxrss`) that runs
`autoattack.run_autoattack` on N synthetic ImageNet-shaped examples (224x224x3,
float32, generated batch by batch by tf.data, never held as a whole) with a
tiny convolutional classifier and minimal attack counts, so the images, not
the attacks, dominate memory. N takes 1x, 2x and 4x `--examples`. With
`--before`, the same script also runs against another checkout of the package
(e.g. the commit before streaming) for comparison.
"""

import argparse
import os
import subprocess
import sys
import time

CHILD = r"""
import resource, sys, time
import numpy as np, tensorflow as tf, keras
from iaat_tf.evaluation import autoattack
n, batch = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((224, 224, 3)),
                          keras.layers.Conv2D(4, 8, strides=8, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
def make(i):
  image = tf.random.stateless_uniform([224, 224, 3], seed=tf.stack([i, 0]))
  return {"image": image, "index": i}, i % 10
data = tf.data.Dataset.range(n).map(make).batch(batch)
options = autoattack.AutoAttackOptions(apgd_iters=1, fab_iters=1, square_queries=1,
                                       targets=1, batch_size=batch)
start = time.time()
report = autoattack.run_autoattack(lambda z: model(z, training=False), data,
                                 eps=4 / 255, options=options)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"RESULT {n} {report.num_examples} {peak:.0f} {time.time() - start:.1f}")
"""


def measure(code_dir: str, n: int, batch: int) -> tuple[float, float]:
  env = dict(os.environ, PYTHONPATH=code_dir, TF_CPP_MIN_LOG_LEVEL="3")
  out = subprocess.run(
    [sys.executable, "-c", CHILD, str(n), str(batch)],
    env=env,
    capture_output=True,
    text=True,
    check=True,
    cwd=code_dir,
  ).stdout
  line = [l for l in out.splitlines() if l.startswith("RESULT")][-1].split()
  assert int(line[2]) == n, line
  return float(line[3]), float(line[4])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=512)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--before", default="", help="another checkout to compare")
  parser.add_argument("--out", default="bench/aa_memory/AA_MEMORY.md")
  args = parser.parse_args()
  here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  codes = [("streamed (this checkout)", here)]
  if args.before:
    codes.append(("before: held in memory", os.path.abspath(args.before)))
  image_mb = 224 * 224 * 3 * 4 / 2**20
  rows = []
  for label, code in codes:
    for factor in (1, 2, 4):
      n = args.examples * factor
      peak, seconds = measure(code, n, args.batch_size)
      rows.append((label, n, n * image_mb, peak, seconds))
      print(f"{label}: {n} examples, peak RSS {peak:.0f} MB ({seconds:.0f} s)", flush=True)
  lines = [
    "# AutoAttack host memory vs split size",
    "",
    f"`python -m bench.aa_memory.aa_memory --examples={args.examples} "
    f"--batch_size={args.batch_size}` ({time.strftime('%Y-%m-%d')}, one run "
    "each, a fresh process per row). Synthetic 224x224x3 float32 examples from "
    "tf.data, a tiny CNN, minimal attack counts (memory, not attack "
    "strength, is measured).",
    "",
    "| code | examples | split as float32 (MB) | peak RSS (MB) | seconds |",
    "| --- | ---: | ---: | ---: | ---: |",
    *[f"| {c} | {n} | {mb:.0f} | {p:.0f} | {s:.0f} |" for c, n, mb, p, s in rows],
    "",
  ]
  for label, _ in codes:
    mine = [r for r in rows if r[0] == label]
    growth = mine[-1][3] - mine[0][3]
    lines.append(
      f"- {label}: from {mine[0][1]} to {mine[-1][1]} examples "
      f"(+{mine[-1][2] - mine[0][2]:.0f} MB of images) peak RSS "
      f"grows by {growth:.0f} MB."
    )
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
