"""The training job: one run from a `Config`, what `iaat-train` does, callable from Python.

    from iaat_tf import runs
    results = runs.train(config)      # the results.json payload

`prepare(config)` is everything that can be checked without TensorFlow, once:
the settings (`validation.validate`, the rules across fields), the paths they
name, and a run already in `config.output_dir` (made with settings that
change its result: refused, naming them; more `--epochs`: the changes its
resume records; finished: its results, and nothing to do). `train` prepares,
then runs the steps (runs/training_steps.py: devices, data, model, fit,
test, export, report; TensorFlow is imported there). `iaat-train` prepares
before TensorFlow loads, then runs the same steps.

A run writes into `config.output_dir`: config.json (the settings, and the
changes of every resume), checkpoints/ (classifier, optimizer, eps table,
epoch), history.csv, tensorboard/, eps_table.npy and train_labels.npy,
plots/, saved_model/ and results.json (last, atomically).
"""

import dataclasses
from typing import Callable, Optional

from iaat_tf import run_io
from iaat_tf.config import Config
from iaat_tf.validation import check_paths, validate

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Prepared:
  """A checked run: its config, the changes its resume records, and the
  results of a finished run (None: there is training to do)."""

  config: Config
  changes: tuple = ()
  finished: Optional[dict] = None


def prepare(config: Config, data: bool = True) -> Prepared:
  """The checks before TensorFlow (ConfigError, run_io.SettingsDiffer): the
  settings, the paths they name (`data`: the data's too) and the run
  already in --output_dir."""
  config = check_paths(validate(config), data)
  if config.overwrite:
    return Prepared(config)
  changes = tuple(run_io.check_resume_compatible(config))
  return Prepared(config, changes, run_io.finished_results(config))


def execute(prepared: Prepared, log: Log = print) -> dict:
  """Trains a prepared run (or says a finished one is finished); its results."""
  if prepared.finished is not None:
    log(run_io.finished_message(prepared.config, prepared.finished))
    return prepared.finished
  from iaat_tf.runs import training_steps  # pylint: disable=g-import-not-at-top

  return training_steps.run(prepared.config, list(prepared.changes), log)


def train(config: Config, log: Log = print) -> dict:
  """Trains, tests and exports the run `config` describes, resuming it when
  its --output_dir holds an unfinished one; returns the results.json payload."""
  return execute(prepare(config), log)
