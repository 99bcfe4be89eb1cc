"""The training command: `iaat-train` or `python -m iaat_tf.main --flagfile=flags/NAME.flags`.

Flags -> `Config` (flags_config.py) -> `runs.train` (runs/training.py:
model.fit with the adaptive trainer, evaluation, SavedModel export,
results.json). The run is prepared (every check that needs only the flags
and the files they name: the settings, the paths, a run already in
--output_dir made with other settings) before TensorFlow is imported; a
finished run is said finished without loading it. `--help` lists the flags
by group. Bad input ends with one line `iaat_tf: error: ...` on stderr and
exit 2 (cli/app.py). `check_main` runs the checks alone for many command
lines: the frontier's pre-flight, before any of its runs starts.
"""

import json
import sys
from typing import Sequence

from absl import flags

from iaat_tf import run_io
from iaat_tf.cli import app, flags_config
from iaat_tf.config import ConfigError
from iaat_tf.runs import flagfiles, training

FLAGS = flags.FLAGS
PROG = "iaat_tf"
SUMMARY = """\
Trains an image classifier with instance adaptive adversarial training (IAAT),
PGD-AT or standard training; evaluates, exports a SavedModel and writes
--output_dir. Rerunning an unfinished run resumes it; a finished run is left
untouched (use --overwrite, or a new --output_dir, to train again)."""


def prepared(argv: Sequence[str], data: bool = True) -> training.Prepared:
  """The run from the parsed flags, checked without TensorFlow (ConfigError,
  run_io.SettingsDiffer; `data`: the data's paths too)."""
  if len(argv) > 1:
    raise ConfigError(
      f"unexpected arguments {' '.join(argv[1:])!r} (flags start with --; "
      "check the flagfile for lines without a leading --)"
    )
  return training.prepare(flags_config.config_from_flags(FLAGS), data)


def run(argv) -> None:
  """The command after its flags are parsed (tests call it under flagsaver)."""
  run_ = app.call(PROG, prepared, argv, errors=(ConfigError,))
  if run_.finished is not None:  # Said finished without loading TensorFlow.
    training.execute(run_)
    return
  from iaat_tf.cli import tensorflow_start  # pylint: disable=g-import-not-at-top

  tensorflow_start.import_tensorflow(
    debug=app.debug(), gpu_memory_growth=run_.config.train.gpu_memory_growth
  )
  # ConfigError and the data's DataError are both ValueErrors: one line each.
  app.call(PROG, lambda _: training.execute(run_), argv, errors=(ValueError,))


def check(args: Sequence[str], data: bool = True) -> dict:
  """What training with the command line `args` would refuse, or change in
  the run in its --output_dir, found without TensorFlow: {"error": line,
  "differences": [...]} or {"changes": [...]} (run_io.check_resume_compatible)."""
  flags_config.define_flags()
  app.define_debug_flag()
  FLAGS.unparse_flags()
  try:
    argv = FLAGS(["iaat_tf", *flagfiles.expand(list(args))])
    return {"changes": list(prepared(argv, data).changes)}
  except run_io.SettingsDiffer as e:
    return {"error": app.one_line(e), "differences": e.differences}
  except flags.Error as e:
    return {"error": app.flag_error_line(e)}
  except (ConfigError, flagfiles.FlagfileError) as e:
    return {"error": app.one_line(e)}


def check_main(data: bool = True) -> None:
  """Checks many training command lines, before any of them runs: reads a
  JSON list of argument lists on stdin and writes `check`'s answer for each
  as a JSON list on stdout (iaat-frontier runs it as
  `python -c "from iaat_tf.cli import train; train.check_main()"`)."""
  print(json.dumps([check(args, data) for args in json.load(sys.stdin)]))


def main() -> None:
  """The entry point: flags (or --help), then `run`, errors as one line."""
  app.run(
    PROG,
    run,
    summary=SUMMARY,
    groups=flags_config.HELP_GROUPS,
    define_flags=flags_config.define_flags,
    errors=(ConfigError, run_io.TrainingDiverged),
  )


if __name__ == "__main__":
  main()
