"""pytest setup shared by every test.

* Two logical CPU devices, configured before TensorFlow starts, so tests can
  run `MirroredStrategy` with 2 replicas on a CPU-only machine.
* absl FLAGS (defined by iaat_tf.flags_config) marked as parsed, so flag
  defaults can be read and `flagsaver` used outside `app.run`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(
      _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # Already initialised (e.g. imported twice).
  pass

from iaat_tf import flags_config  # pylint: disable=g-import-not-at-top,unused-import

flags.FLAGS.mark_as_parsed()
