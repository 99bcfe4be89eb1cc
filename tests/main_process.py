"""Test helper: run `python -m iaat_tf.main` in a child process and read its checkpoints.

Shared by the kill-and-resume tests (resume_test.py, mirrored_resume_test.py).
"""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from iaat_tf.training import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_KEYS = ("classifier/", "eps_table/", "optimizer/")


def start(args, output_dir: str) -> subprocess.Popen:
  """Starts the CLI with `args` writing to `output_dir` (stdout+stderr piped)."""
  env = dict(
    os.environ,
    TF_CPP_MIN_LOG_LEVEL="2",
    PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
  )
  env.pop("TF_CONFIG", None)
  return subprocess.Popen(
    [sys.executable, "-m", "iaat_tf.main", *args, f"--output_dir={output_dir}"],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def wait(proc: subprocess.Popen, timeout: float) -> str:
  """The process's output; fails on a timeout or a non-zero exit."""
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
    raise AssertionError(f"timed out:\n{out[-4000:]}") from None
  assert proc.returncode == 0, f"exit {proc.returncode}:\n{out[-4000:]}"
  return out


def checkpoint_state(checkpoint_dir: str) -> dict:
  """{variable path: array} of the newest checkpoint's training state."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(checkpoint_dir))
  return {
    k: reader.get_tensor(k)
    for k in reader.get_variable_to_shape_map()
    if k.startswith(CHECKPOINT_KEYS) and not k.endswith("OBJECT_CONFIG_JSON")
  }


def kill_after_first_checkpoint(
  proc: subprocess.Popen, run_dir: str, timeout: float, settle: float
) -> tuple:
  """SIGKILLs `proc` `settle` s after its first checkpoint appears.

  Returns (its output, the number of finished epochs in that checkpoint).
  """
  checkpoint_dir = os.path.join(run_dir, "checkpoints")
  deadline = time.monotonic() + timeout
  while not os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
    assert proc.poll() is None, f"run ended early:\n{proc.communicate()[0][-4000:]}"
    assert time.monotonic() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  time.sleep(settle)  # Into the next epoch.
  proc.send_signal(signal.SIGKILL)
  out, _ = proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  return out, runtime.finished_epochs(tf.train.latest_checkpoint(checkpoint_dir))


def assert_resumed_like_uninterrupted(run_dir: str, reference_dir: str, steps: int) -> dict:
  """A resumed run's last checkpoint and eps table equal the uninterrupted
  run's (every variable, to 1e-6), its optimizer at `steps`; returns its state."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  resumed = checkpoint_state(os.path.join(run_dir, "checkpoints"))
  uninterrupted = checkpoint_state(os.path.join(reference_dir, "checkpoints"))
  # The optimizer step continued from the checkpoint instead of restarting.
  assert int(resumed["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == steps
  assert sorted(resumed) == sorted(uninterrupted)
  for key, value in uninterrupted.items():
    np.testing.assert_allclose(resumed[key], value, atol=1e-6, rtol=0, err_msg=key)
  table = np.load(os.path.join(run_dir, "eps_table.npy"))
  np.testing.assert_allclose(
    table, np.load(os.path.join(reference_dir, "eps_table.npy")), atol=1e-6, rtol=0
  )
  assert len(np.unique(table)) > 2  # The adaptive epochs ran after the resume.
  return resumed
