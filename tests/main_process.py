"""Test helper: run `python -m iaat_tf.main` in a child process and read its checkpoints.

Shared by the kill-and-resume tests (resume_test.py, mirrored_resume_test.py).
"""

import os
import subprocess
import sys

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_KEYS = ("classifier/", "eps_table/", "optimizer/", "epoch/")


def start(args, output_dir: str) -> subprocess.Popen:
  """Starts the CLI with `args` writing to `output_dir` (stdout+stderr piped)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("TF_CONFIG", None)
  return subprocess.Popen(
      [sys.executable, "-m", "iaat_tf.main", *args, f"--output_dir={output_dir}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)


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
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith(CHECKPOINT_KEYS) and not k.endswith("OBJECT_CONFIG_JSON")}
