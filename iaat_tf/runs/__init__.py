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

Importing this package loads no TensorFlow: the jobs import it when they
run.
"""

from iaat_tf.runs.evaluation import evaluate
from iaat_tf.runs.evaluation_config import EvaluationConfig
from iaat_tf.runs.frontier_config import FrontierConfig
from iaat_tf.runs.frontier_run import frontier
from iaat_tf.runs.pareto_run import ParetoConfig, pareto
from iaat_tf.runs.training import train

__all__ = [
  "EvaluationConfig",
  "FrontierConfig",
  "ParetoConfig",
  "evaluate",
  "frontier",
  "pareto",
  "train",
]
