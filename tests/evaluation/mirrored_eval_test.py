"""Mirrored evaluation when the last batch leaves a replica with no examples.

33 test examples in batches of 16 end with a batch of 1: on 2 replicas one
replica's share is empty. Metrics are accumulated per example, so the loss
stays finite and every metric equals the single-device evaluation. Runs in a
subprocess (a fresh process per MirroredStrategy avoids collective-key
clashes between strategies).
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from iaat_tf import models
from iaat_tf.training.trainer import AdversarialTrainer
from iaat_tf.config import AttackConfig, ValidationConfig, MethodConfig

rng = np.random.RandomState(0)
x = rng.rand(33, 8, 8, 1).astype(np.float32)
y = rng.randint(0, 3, 33).astype(np.int64)
ds = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(33)}, y)).batch(16)

def evaluate(strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    classifier = models.small_cnn((8, 8, 1), 3, (0.5,), (0.25,))
    trainer = AdversarialTrainer(
        classifier, 64, MethodConfig(method="iaat"), AttackConfig(steps=1),
        validation=ValidationConfig(eps=0.1, steps=2, step_size=0.05))
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
  return {k: float(v) for k, v in trainer.evaluate(ds, verbose=0, return_dict=True).items()}

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
two = evaluate(tf.distribute.MirroredStrategy(devices[:2]))
one = evaluate(tf.distribute.OneDeviceStrategy(devices[0]))
print("RESULT " + json.dumps({"one": one, "two": two}))
"""


@pytest.mark.slow
def test_partial_last_batch_on_two_replicas_matches_one_device():
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(
    [sys.executable, "-c", _SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
  result = json.loads(line[len("RESULT ") :])
  for key in ("loss", "clean_acc", "pgd_acc"):
    assert result["two"][key] == pytest.approx(result["one"][key], abs=1e-6), result
