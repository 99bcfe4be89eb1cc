"""What a run does, one module per job, callable from Python as the commands run them.

    from iaat_tf import runs
    results = runs.train(config)                              # iaat-train
    runs.evaluate(runs.EvaluationConfig(run_dir=config.output_dir))  # iaat-evaluate
    runs.frontier(runs.FrontierConfig(...))                   # iaat-frontier
    runs.pareto(runs.ParetoConfig(runs="runs/*", out_dir="pareto"))  # iaat-pareto

Each job checks its config once, without TensorFlow, then runs:

* training: `training.py` (prepare, train), `training_steps.py` (devices,
  data, model, fit), `training_results.py` (test, export, report);
* evaluation: `evaluation_config.py` (`EvaluationConfig` and its checks),
  `evaluation.py`, `run_evaluation.py` (a training run: the suite,
  AutoAttack), `foreign_evaluation.py` (a model not trained here);
* frontier: `frontier_config.py` (`FrontierConfig`, its settings),
  `frontier_run.py`, `frontier_jobs.py` (one run: train, judge, read),
  `frontier_cache.py` (what a rerun may reuse), `executors.py` (local
  device slots or Ray), `flagfiles.py` (the shipped experiments by name);
* pareto: `pareto_run.py`;
* shared: `progress.py` (the evaluation's progress line).

Importing this package loads nothing else: each name below loads its module
when first used (as `iaat_tf` does), so a job's module imports only what it
needs, and the frontier's jobs, which run the commands in subprocesses, are
not imported by the commands that import one job's config.
"""

from typing import TYPE_CHECKING

from iaat_tf import lazy

# Public name -> (module, attribute).
_LAZY = {
  "train": ("iaat_tf.runs.training", "train"),
  "evaluate": ("iaat_tf.runs.evaluation", "evaluate"),
  "frontier": ("iaat_tf.runs.frontier_run", "frontier"),
  "pareto": ("iaat_tf.runs.pareto_run", "pareto"),
  "EvaluationConfig": ("iaat_tf.runs.evaluation_config", "EvaluationConfig"),
  "FrontierConfig": ("iaat_tf.runs.frontier_config", "FrontierConfig"),
  "ParetoConfig": ("iaat_tf.runs.pareto_run", "ParetoConfig"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy.names(__name__, _LAZY)


if TYPE_CHECKING:  # For type checkers and IDEs; never executed.
  from iaat_tf.runs.evaluation import evaluate  # noqa: F401
  from iaat_tf.runs.evaluation_config import EvaluationConfig  # noqa: F401
  from iaat_tf.runs.frontier_config import FrontierConfig  # noqa: F401
  from iaat_tf.runs.frontier_run import frontier  # noqa: F401
  from iaat_tf.runs.pareto_run import ParetoConfig, pareto  # noqa: F401
  from iaat_tf.runs.training import train  # noqa: F401
