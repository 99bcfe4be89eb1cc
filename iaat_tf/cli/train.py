"""The training command: `iaat-train` or `python -m iaat_tf.main --flagfile=flags/NAME.flags`.

Parses absl flags into a `Config` (flags_config.py), then runs
`experiment.run`: model.fit with the adaptive trainer, evaluation, SavedModel
export and results.json. `--help` lists the flags by group without loading
TensorFlow. Bad input ends with one line `iaat_tf: error: ...` on stderr and
exit 2 (cli/app.py); TensorFlow's start-up lines are hidden unless `--debug`.
"""

from absl import flags

from iaat_tf import run_io
from iaat_tf.cli import app
from iaat_tf.cli import flags_config
from iaat_tf.config import ConfigError

FLAGS = flags.FLAGS
PROG = "iaat_tf"
SUMMARY = """\
Trains an image classifier with instance adaptive adversarial training (IAAT),
PGD-AT or standard training; evaluates, exports a SavedModel and writes
--output_dir. Rerunning an unfinished run resumes it; a finished run is left
untouched (use --overwrite, or a new --output_dir, to train again)."""


def fail(message: str) -> None:
  app.fail(PROG, message)


def run(argv) -> None:
  """The command after its flags are parsed (tests call it under flagsaver)."""
  if len(argv) > 1:
    fail(
      f"unexpected arguments {' '.join(argv[1:])!r} (flags start with --; "
      "check the flagfile for lines without a leading --)"
    )
  try:
    config = flags_config.config_from_flags(FLAGS)
  except ConfigError as e:
    fail(str(e))
  if not config.overwrite:  # A finished run: say so without loading TF.
    try:
      run_io.check_resume_compatible(config)
    except ConfigError as e:
      fail(str(e))
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
