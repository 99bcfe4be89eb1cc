"""Which code made a result: package version, git commit, libraries, devices.

`provenance()` is recorded in every run's config.json and results.json and
in every autoattack.json, so a reader of a results file can tell which code,
libraries and hardware produced it. The git commit is read only when the
package runs from a git checkout (an installed wheel has none: `null`).
"""

import os
import platform
import subprocess
from typing import Optional

from iaat_tf._version import __version__

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit(path: str = _CHECKOUT) -> Optional[dict]:
  """{"commit", "dirty"} of the checkout holding the package, or None."""
  if not os.path.exists(os.path.join(path, ".git")):
    return None
  try:
    commit = subprocess.run(
      ["git", "-C", path, "rev-parse", "HEAD"],
      check=True,
      capture_output=True,
      text=True,
      timeout=10,
    ).stdout.strip()
    status = subprocess.run(
      ["git", "-C", path, "status", "--porcelain", "--untracked-files=no", "--", "iaat_tf"],
      check=True,
      capture_output=True,
      text=True,
      timeout=10,
    ).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": bool(status)}


def provenance(precision: Optional[str] = None) -> dict:
  """The versions, commit, devices and precision of this process's run."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  devices: dict[str, int] = {}
  for device in tf.config.list_logical_devices():
    devices[device.device_type] = devices.get(device.device_type, 0) + 1
  gpus = [
    tf.config.experimental.get_device_details(g).get("device_name", "GPU")
    for g in tf.config.list_physical_devices("GPU")
  ]
  git = git_commit()
  return {
    "iaat_tf": __version__,
    "git_commit": git["commit"] if git else None,
    "git_dirty": git["dirty"] if git else None,
    "tensorflow": tf.__version__,
    "keras": keras.__version__,
    "numpy": np.__version__,
    "python": platform.python_version(),
    "platform": platform.platform(),
    "devices": devices,
    "gpus": gpus,
    "precision": precision or keras.mixed_precision.global_policy().name,
  }
