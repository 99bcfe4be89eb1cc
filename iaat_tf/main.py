"""Command line: `python -m iaat_tf.main --flagfile=flags/NAME.flags`.

Parses absl flags into a `Config` (flags_config.py), then runs
`experiment.run`: model.fit with the adaptive trainer, evaluation, SavedModel
export and results.json. Bad input ends with one line on stderr and exit 2.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # Hide TF's C++ INFO lines.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from iaat_tf import flags_config
from iaat_tf.config import ConfigError

FLAGS = flags.FLAGS
EXIT_USAGE = 2


def fail(message: str) -> None:
  print(f"iaat_tf: error: {message}", file=sys.stderr)
  sys.exit(EXIT_USAGE)


def main(argv) -> None:
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r} (flags start with --; "
         "check the flagfile for lines without a leading --)")
  try:
    config = flags_config.config_from_flags(FLAGS)
  except ConfigError as e:
    fail(str(e))
  # Imported late: parsing flags and reporting their errors needs no TF.
  from iaat_tf import data, experiment  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  try:
    experiment.run(config)
  except (ConfigError, data.DataError) as e:
    fail(str(e))


def parse_flags(argv):
  """absl parsing with a one-line error and exit 2 (bad flag, flagfile, value)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    fail(f"{e}".replace("ERROR:: ", "").strip().splitlines()[0])


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
