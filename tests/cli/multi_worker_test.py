"""`--strategy=multi_worker`: two local worker processes vs one device.

Two `python -m iaat_tf.main` processes form a MultiWorkerMirroredStrategy
cluster on 127.0.0.1 (TF_CONFIG per process, one CPU replica each) and train
IAAT on digits; a third process trains the same run on one device
(`--strategy=mirrored` over the single CPU, so Keras iterates the data the
same way as under the multi-worker strategy). The per-example eps table,
the classifier weights and the optimizer step must match: each worker sees
its half of every global batch (AutoShardPolicy.DATA keeps the global example
ids), the eps-table write all-gathers (index, eps) across workers, and the
gradients are summed over the 2 replicas.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.training import devices, runtime
from iaat_tf.config import ConfigError, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 3
TIMEOUT = 150  # seconds per process; the test takes ~30 s on 2 CPU cores.
ARGS = [
  f"--flagfile={os.path.join(REPO, 'flags', 'quickstart.flags')}",
  "--dataset=digits",
  "--model=small_cnn",
  "--method=iaat",
  f"--epochs={EPOCHS}",
  "--warmup_epochs=1",
  "--max_train_examples=256",
  "--batch_size=32",
  "--max_test_examples=64",
  "--val_examples=64",
  "--eval_pgd_steps=2",
  "--pgd_steps=3",
  "--seed=1",
  "--export=false",
  "--verbose=0",
]


def _free_ports(n: int):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _env(tf_config=None):
  env = dict(
    os.environ,
    TF_CPP_MIN_LOG_LEVEL="2",
    PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  env.pop("TF_CONFIG", None)
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  return env


def _start(args, env):
  return subprocess.Popen(
    [sys.executable, "-m", "iaat_tf.main", *ARGS, *args],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _finish(procs):
  """Waits for every process; on any failure kills the rest and shows logs."""
  logs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=TIMEOUT)
      logs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  failed = [i for i, p in enumerate(procs) if p.returncode != 0]
  assert not failed, "\n\n".join(
    f"--- process {i} (exit {procs[i].returncode}):\n{logs[i][-4000:]}" for i in failed
  )
  return logs


def _checkpoint(directory: str) -> dict:
  """{classifier variable / eps_table / optimizer iterations: array}."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(directory))
  keep = ("classifier/", "eps_table/", "optimizer/_iterations/", "epoch/")
  return {
    k: reader.get_tensor(k)
    for k in reader.get_variable_to_shape_map()
    if k.startswith(keep) and not k.endswith("OBJECT_CONFIG_JSON")
  }


def _assert_same_state(a: dict, b: dict, atol: float) -> None:
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_allclose(a[key], b[key], atol=atol, rtol=0, err_msg=key)


@pytest.mark.slow
def test_two_workers_match_one_device(tmp_path):
  multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  procs = [
    _start(
      ["--strategy=multi_worker", f"--output_dir={multi}"],
      _env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
    )
    for i in range(2)
  ]
  procs.append(_start(["--strategy=mirrored", f"--output_dir={single}"], _env()))
  logs = _finish(procs)
  assert "2 replica(s)" in logs[0] and "1 replica(s)" in logs[2]

  chief = _checkpoint(os.path.join(multi, "checkpoints"))
  reference = _checkpoint(os.path.join(single, "checkpoints"))
  table_key = next(k for k in chief if k.startswith("eps_table"))
  table = chief[table_key]
  assert table.shape == (256,)
  assert (table > 0).any() and len(np.unique(table)) > 2  # Adapted, per example.
  steps_key = next(k for k in chief if k.startswith("optimizer/_iterations"))
  assert int(chief[steps_key]) == EPOCHS * 256 // 32
  _assert_same_state(chief, reference, atol=1e-5)
  np.testing.assert_allclose(
    np.load(os.path.join(multi, "eps_table.npy")),
    np.load(os.path.join(single, "eps_table.npy")),
    atol=1e-5,
    rtol=0,
  )
  # The replicas on the two workers never diverged.
  _assert_same_state(chief, _checkpoint(os.path.join(multi, ".worker1", "checkpoints")), atol=0)

  # The chief writes output_dir; the other worker only its scratch twin.
  results = json.load(open(os.path.join(multi, "results.json")))
  assert results["replicas"] == 2 and results["resumed_from_epoch"] == 0
  with open(os.path.join(multi, "history.csv")) as f:
    rows = f.read().strip().splitlines()
  assert len(rows) == 1 + EPOCHS, f"history.csv written by several workers:\n{rows}"
  scratch = set(os.listdir(os.path.join(multi, ".worker1")))
  assert "checkpoints" in scratch and scratch <= {"checkpoints", "history.csv"}


class _FakeStrategy:
  """Only what is_chief/worker_dir read: the cluster resolver."""

  def __init__(self, cluster, task_type=None, task_id=None):
    self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )


@pytest.mark.parametrize(
  "cluster,task,chief,scratch",
  [
    ({}, (None, None), True, None),
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True, None),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False, ".worker1"),
    ({"chief": ["a:1"], "worker": ["b:1"]}, ("chief", 0), True, None),
    ({"chief": ["a:1"], "worker": ["b:1"]}, ("worker", 0), False, ".worker0"),
    ({"worker": ["a:1"], "evaluator": ["c:1"]}, ("evaluator", 0), False, ".evaluator0"),
  ],
)
def test_is_chief_and_worker_dir(cluster, task, chief, scratch, tmp_path):
  strategy = _FakeStrategy(cluster, *task)
  assert runtime.is_chief(strategy) == chief
  out = str(tmp_path)
  expected = os.path.join(out, scratch, "ckpt") if scratch else os.path.join(out, "ckpt")
  assert runtime.worker_dir(out, strategy, "ckpt") == expected
  assert os.path.isdir(os.path.dirname(expected))  # Ready for files.


def test_single_process_strategies_are_chief():
  assert runtime.is_chief(tf.distribute.get_strategy())
  assert runtime.worker_dir("out", tf.distribute.get_strategy(), "x") == os.path.join("out", "x")


@pytest.mark.parametrize(
  "tf_config",
  [
    "{not json",
    "[1, 2]",
    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}),
  ],
)
def test_bad_tf_config_is_a_one_line_config_error(tf_config, monkeypatch):
  monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(ConfigError, match="TF_CONFIG") as e:
    devices.make_strategy(TrainConfig(strategy="multi_worker"))
  assert "\n" not in str(e.value)
