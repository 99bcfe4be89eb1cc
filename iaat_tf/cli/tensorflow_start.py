"""TensorFlow, imported quietly: its C++ start-up lines (oneDNN, CUDA probing,
cpu_feature_guard) and Python warnings hidden unless asked for, and the GPU
memory policy set first. The commands call it once their input is checked;
(Python users of `iaat_tf.runs` get TensorFlow as it starts.)
"""

import os
import sys
import warnings
from typing import Optional


def quiet_environment(debug: bool) -> None:
  """Before TensorFlow is imported: hide its C++ logs unless `debug`."""
  if debug:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore")
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.set_verbosity(logging.ERROR)


def import_tensorflow(debug: bool = False, gpu_memory_growth: Optional[bool] = None):
  """Imports TensorFlow (once), hiding the lines its C++ start-up prints.

  `gpu_memory_growth` (True or False) sets TensorFlow's GPU memory policy
  first (devices.memory_env; an exported TF_FORCE_GPU_ALLOW_GROWTH wins).

  TF 2.21 writes its start-up lines (oneDNN notice, CUDA probing) through
  absl's C++ logging before TF_CPP_MIN_LOG_LEVEL applies, so the import runs
  with the process's stderr (file descriptor 2) pointed at /dev/null; Python
  exceptions raised by the import still reach the user after it is restored.
  """
  if gpu_memory_growth is not None:
    from iaat_tf.training import devices  # pylint: disable=g-import-not-at-top

    os.environ.update(devices.memory_env(gpu_memory_growth))
  quiet_environment(debug)
  if debug or "tensorflow" in sys.modules:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return tf
  sys.stderr.flush()
  saved = os.dup(2)
  null = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(null, 2)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)
  tf.get_logger().setLevel("ERROR")
  return tf
