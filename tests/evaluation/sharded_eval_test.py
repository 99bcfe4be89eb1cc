"""Evaluation streams and shards: per-example results do not depend on the
chunk, the batch or the number of replicas, and the split is read lazily.

The replica comparison runs `python -m iaat_tf.evaluate` twice in
subprocesses (one device; MirroredStrategy over 2 virtual CPUs, the
SavedModel loaded in its scope) and compares every example's AutoAttack
outcome and the whole robustness curve.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf import config as cfg
from iaat_tf.runs import training
from iaat_tf.evaluation import autoattack, replicas

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AA = [
  "--aa_apgd_iters=10",
  "--aa_fab_iters=10",
  "--aa_square_queries=100",
  "--aa_targets=3",
  "--aa_batch_size=24",
  "--aa_max_examples=100",
  "--eps_list=0.1,0.2",
  "--pgd_steps=3",
  "--apgd_iters=5",
  "--num_examples=100",
  "--batch_size=24",
]


def _evaluate(run_dir, out_dir, *extra):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "iaat_tf.evaluate",
      f"--run_dir={run_dir}",
      f"--out_dir={out_dir}",
      *AA,
      *extra,
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
  with open(os.path.join(out_dir, "autoattack_examples.csv")) as f:
    rows = list(csv.DictReader(f))
  return rows, json.load(open(os.path.join(out_dir, "robustness.json"))), proc.stdout


@pytest.mark.slow
def test_one_and_two_replicas_give_identical_per_example_results(tmp_path):
  run_dir = str(tmp_path / "run")
  training.train(
    cfg.Config(
      output_dir=run_dir,
      data=cfg.DataConfig(batch_size=64),
      method=cfg.MethodConfig(method="pgd_at", eps=0.1),
      attack=cfg.AttackConfig(steps=2),
      train=cfg.TrainConfig(epochs=2, learning_rate=0.05, verbose=0),
      validation=cfg.ValidationConfig(eps=0.15, steps=3, max_examples=64),
    ),
    log=lambda _: None,
  )
  one, curve_one, _ = _evaluate(run_dir, tmp_path / "one")
  two, curve_two, out = _evaluate(
    run_dir, tmp_path / "two", "--strategy=mirrored", "--num_virtual_devices=2"
  )
  assert "2 device(s)" in out
  assert len(one) == 100 and [r["index"] for r in one] == [str(i) for i in range(100)]
  assert one == two  # Every example: clean, robust, the attack that broke it.
  broken = {r["broken_by"] for r in one}
  assert broken - {"", "clean"}, "no attack broke anything: a vacuous check"
  assert curve_one["curve"] == curve_two["curve"]


def test_replicas_split_rows_and_pad_shares_to_one_bucket():
  assert replicas.bucket(3, 64) == 8 and replicas.bucket(100, 64) == 100
  assert replicas.bucket(40, 64) == 64 and replicas.bucket(40, 48) == 48
  seen = []

  def fn(rows, shift):
    seen.append(int(rows.shape[0]))
    return rows * 2 + shift

  out = replicas.Replicas().map(fn, [np.arange(5)], shared=[np.int64(1)], cap=16)
  np.testing.assert_array_equal(out, np.arange(5) * 2 + 1)
  assert seen == [8]  # Padded to a power of two, results cut back to 5.


@pytest.mark.slow
def test_autoattack_reads_the_split_lazily(digits_mlp, digits):
  """After the first chunk went through the whole sequence, only that chunk
  (plus what tf.data prefetches) has been read from the source."""
  x, y = digits[0][1400:1520], digits[1][1400:1520]
  pulled = []

  def source():
    for i in range(0, 120, 4):  # 30 batches of 4.
      pulled.append(i)
      yield {"image": x[i : i + 4], "index": np.arange(i, i + 4)}, y[i : i + 4]

  spec = (
    {"image": tf.TensorSpec([None, 8, 8, 1], tf.float32), "index": tf.TensorSpec([None], tf.int64)},
    tf.TensorSpec([None], tf.int64),
  )
  dataset = tf.data.Dataset.from_generator(source, output_signature=spec)
  reads_when_done = {}

  def progress(p):
    if p.attack == "square":
      reads_when_done.setdefault(p.chunk, len(pulled))

  options = autoattack.AutoAttackOptions(
    apgd_iters=5, fab_iters=5, square_queries=20, targets=2, batch_size=16
  )
  report = autoattack.run_autoattack(
    lambda z: digits_mlp(z, training=False), dataset, eps=0.1, options=options, progress=progress
  )
  assert report.num_examples == 120
  assert reads_when_done[(0, 16)] <= 4 + 4  # 4 batches of the chunk + prefetch.
  assert len(reads_when_done) == 8  # 7 chunks of 16 and one of 8.
