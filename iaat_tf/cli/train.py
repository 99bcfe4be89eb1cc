"""The training command: `iaat-train` or `python -m iaat_tf.main --flagfile=flags/NAME.flags`.

Parses absl flags into a `Config` (flags_config.py), then runs
`experiment.run`: model.fit with the adaptive trainer, evaluation, SavedModel
export and results.json. `--help` lists the flags by group without loading
TensorFlow. Bad input ends with one line `iaat_tf: error: ...` on stderr and
exit 2 (cli/app.py); TensorFlow's start-up lines are hidden unless `--debug`.

Every check that needs only the flags and the files they name runs before
TensorFlow is imported (`checked_config`): the settings, the paths, and a
run already in --output_dir (made with other settings: refused, naming
them). `check_main` runs these checks alone for many command lines, for
the frontier before it starts any run.
"""

import json
import sys
from typing import Sequence

from absl import flags

from iaat_tf import run_io, validation
from iaat_tf.cli import app, flagfiles
from iaat_tf.cli import flags_config
from iaat_tf.config import Config, ConfigError

FLAGS = flags.FLAGS
PROG = "iaat_tf"
SUMMARY = """\
Trains an image classifier with instance adaptive adversarial training (IAAT),
PGD-AT or standard training; evaluates, exports a SavedModel and writes
--output_dir. Rerunning an unfinished run resumes it; a finished run is left
untouched (use --overwrite, or a new --output_dir, to train again)."""


def fail(message: str) -> None:
  app.fail(PROG, message)


def checked_config(argv: Sequence[str], data: bool = True) -> tuple[Config, list]:
  """The run's Config from the parsed flags and the changes a resume makes
  (run_io.check_resume_compatible); ConfigError for anything wrong with
  the flags, the paths they name (`data`: the data's too) or the run
  already in --output_dir."""
  if len(argv) > 1:
    raise ConfigError(
      f"unexpected arguments {' '.join(argv[1:])!r} (flags start with --; "
      "check the flagfile for lines without a leading --)"
    )
  config = validation.check_paths(flags_config.config_from_flags(FLAGS), data)
  return config, [] if config.overwrite else run_io.check_resume_compatible(config)


def run(argv) -> None:
  """The command after its flags are parsed (tests call it under flagsaver)."""
  try:
    config, _ = checked_config(argv)
  except ConfigError as e:
    fail(str(e))
  if not config.overwrite:  # A finished run: say so without loading TF.
    done = run_io.finished_results(config)
    if done is not None:
      print(run_io.finished_message(config, done))
      return
  # Imported late: parsing flags and reporting their errors needs no TF.
  app.import_tensorflow(debug=app.debug(), gpu_memory_growth=config.train.gpu_memory_growth)
  from iaat_tf import data  # pylint: disable=g-import-not-at-top
  from iaat_tf.cli import experiment  # pylint: disable=g-import-not-at-top

  try:
    experiment.run(config)
  except (ConfigError, data.DataError) as e:
    fail(str(e))


def check(args: Sequence[str], data: bool = True) -> dict:
  """What training with the command line `args` would refuse, or change in
  the run in its --output_dir, found without TensorFlow: {"error": line,
  "differences": [...]} or {"changes": [...]} (run_io.check_resume_compatible).
  `data`: check the data's paths too (False: the run reads them elsewhere)."""
  app.define_debug_flag()
  FLAGS.unparse_flags()
  try:
    argv = FLAGS(["iaat_tf", *flagfiles.expand(list(args))])
    return {"changes": checked_config(argv, data)[1]}
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
    errors=(ConfigError, run_io.TrainingDiverged),
  )


if __name__ == "__main__":
  main()
