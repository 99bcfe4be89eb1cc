"""The evaluation job: what `iaat-evaluate` does, callable from Python.

    from iaat_tf import runs
    runs.evaluate(runs.EvaluationConfig(run_dir="runs/quickstart"))

`evaluate(options)` checks the evaluation once, without TensorFlow
(`evaluation_config.check`), then `execute`s it: on a training run the
robustness suite and/or AutoAttack as `options.attacks` says
(runs/run_evaluation.py); on a model this package did not train
(`saved_model` or `keras_model`) AutoAttack (runs/foreign_evaluation.py).
`iaat-evaluate` checks before TensorFlow loads, then executes.
"""

from typing import Callable

from iaat_tf.runs import evaluation_config
from iaat_tf.runs.evaluation_config import EvaluationConfig

Log = Callable[[str], None]


def execute(options: EvaluationConfig, log: Log = print) -> dict:
  """Runs a checked evaluation; {"robustness", "autoattack"} (a run's) or
  the foreign model's autoattack.json payload."""
  if options.foreign:
    from iaat_tf.runs import foreign_evaluation  # pylint: disable=g-import-not-at-top

    return foreign_evaluation.autoattack_model(options, log)
  from iaat_tf.runs import run_evaluation  # pylint: disable=g-import-not-at-top

  return run_evaluation.evaluate_selected(options.run_dir or "", options, log)


def evaluate(options: EvaluationConfig, log: Log = print) -> dict:
  """Checks, then runs the evaluation `options` describes (see `execute`)."""
  return execute(evaluation_config.check(options), log)
