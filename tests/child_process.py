"""Test helper: run `python -m MODULE` in a child process, and an environment
in which that child cannot import TensorFlow.

Shared by the tests that prove a check happens before TensorFlow is imported
(cli/before_tensorflow_test.py, cli/train_test.py). Imports no TensorFlow.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(module: str, args, env: dict, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m module *args` in `cwd` with `env`; its output captured as text."""
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=str(cwd),
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def no_tensorflow_env(root) -> dict:
  """os.environ with PYTHONPATH where `import tensorflow` fails (a stub
  package written under `root`) and the checkout comes next: a child that
  still succeeds never loaded TensorFlow."""
  fake = os.path.join(str(root), "fake_tf", "tensorflow")
  os.makedirs(fake)
  with open(os.path.join(fake, "__init__.py"), "w") as f:
    f.write("raise ImportError('tensorflow was imported')\n")
  return dict(os.environ, PYTHONPATH=f"{os.path.dirname(fake)}{os.pathsep}{REPO}")
