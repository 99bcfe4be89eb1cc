"""Judging a training run's directory (TensorFlow): the robustness suite and AutoAttack.

`evaluate_run` runs the PGD/APGD suite over radii (robustness.json and the
curve), `autoattack_run` AutoAttack standard on the run's test split
(autoattack.json, autoattack_examples.csv), `evaluate_selected` what
`--attacks` names. Both load the run's config, data and weights the same
way (`_inputs`), spread the attacks over a strategy's replicas, write their
files and add their numbers to the run's results.json. Called through
`runs.evaluate` (runs/evaluation.py) once the evaluation is checked;
runs/foreign_evaluation.py shares the AutoAttack part for a model this
package did not train.
"""

import dataclasses
import os
from typing import Callable

import tensorflow as tf

from iaat_tf import config as cfg
from iaat_tf import data, models, run_io

from iaat_tf.attacks import gradients
from iaat_tf.runs.evaluation_config import (
  CIFAR10_C_CORRUPTIONS,
  EvaluationConfig,
  EvaluationError,
  autoattack_options,
  load_run_config,
  threat_model,
)
from iaat_tf.runs.progress import ProgressLine
from iaat_tf.evaluation import autoattack, corruptions, masking, robustness
from iaat_tf.models import export
from iaat_tf.reports import curves, plots

AA_EXAMPLES = "autoattack_examples.csv"  # Per example: id, label, outcome.


_STRATEGIES: dict = {}


def strategy_for(options: EvaluationConfig) -> tf.distribute.Strategy:
  """The (cached) strategy the attacks spread over (evaluation/replicas.py)."""
  key = (options.strategy, options.num_virtual_devices)
  if key not in _STRATEGIES:
    from iaat_tf.training import devices  # pylint: disable=g-import-not-at-top

    train = cfg.TrainConfig(
      strategy=options.strategy, num_virtual_devices=options.num_virtual_devices
    )
    devices.configure_devices(train)
    _STRATEGIES[key] = devices.make_strategy(train)
  return _STRATEGIES[key]


def classifier_from_checkpoint(
  config: cfg.Config, info: data.DatasetInfo, run_dir: str
) -> tf.keras.Model:
  """Rebuilds the classifier and restores its weights from the latest checkpoint."""
  ckpt = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
  if not ckpt:
    raise EvaluationError(f"{run_dir}: no checkpoint in {run_dir}/checkpoints")
  classifier = models.build_classifier(config.model, info.image_shape, info.num_classes, info.name)
  tf.train.Checkpoint(classifier=classifier).restore(ckpt).expect_partial()
  return classifier


def logits_function(
  config: cfg.Config, info: data.DatasetInfo, run_dir: str, source: str
) -> Callable[[tf.Tensor], tf.Tensor]:
  """images -> float32 logits, from the SavedModel or the checkpoint."""
  if source == "saved_model":
    path = os.path.join(run_dir, "saved_model")
    if not os.path.isdir(path):
      raise EvaluationError(
        f"{run_dir}: no saved_model/ (train with --export, or use --source=checkpoint)"
      )
    return export.load_classifier(path)
  if source == "checkpoint":
    classifier = classifier_from_checkpoint(config, info, run_dir)
    return gradients.mark_independent(lambda x: tf.cast(classifier(x, training=False), tf.float32))
  raise EvaluationError(f"unknown --source={source!r}; use saved_model or checkpoint")


def _where(
  run_dir: str, options: EvaluationConfig, name: str, norm: str, run_norm: str
) -> tuple[str, str]:
  """(output directory, results.json key) of an evaluation. In another norm
  than the run's, both get the norm as a suffix (eval_l2/, "autoattack_l2"),
  so they never overwrite the run's own-norm results (which pareto reads)."""
  suffix = "" if norm == run_norm else f"_{norm}"
  return (options.out_dir or os.path.join(run_dir, "eval" + suffix)), name + suffix


def default_eps_list(eval_eps: float, norm: str = "linf") -> list:
  """0, eps/2, eps, 2 eps (L-inf: at most 1, the whole pixel range)."""
  top = min(1.0, 2 * eval_eps) if norm == "linf" else 2 * eval_eps
  return sorted({0.0, eval_eps / 2, eval_eps, top})


def corruption_accuracy(
  logits_fn, config: cfg.Config, options: EvaluationConfig, log: Callable[[str], None]
) -> dict:
  """Clean accuracy on tfds `cifar10_corrupted` configs, when present."""
  if config.data.dataset != "cifar10":
    return {
      "available": False,
      "message": f"CIFAR-10-C applies to cifar10 runs, not {config.data.dataset}",
    }
  # Each name is one of CIFAR10_C_CORRUPTIONS (EvaluationConfig checks).
  names = CIFAR10_C_CORRUPTIONS if "all" in options.corruptions else options.corruptions
  return corruptions.corruption_accuracy(
    logits_fn,
    names,
    options.severities,
    data_dir=options.data_dir or config.data.data_dir,
    max_examples=options.max_examples,
    batch_size=options.batch_size or config.data.eval_batch_size,
    log=log,
  )


def _inputs(run_dir: str, config: cfg.Config, options: EvaluationConfig, examples: int, batch: int):
  """(strategy, datasets, logits_fn) of a run's evaluation: the strategy
  first (it may split the CPU), the test split (`examples`: 0 for all), the
  weights --source names."""
  strategy = strategy_for(options)
  data_cfg = dataclasses.replace(
    config.data,
    augment=False,
    max_eval_examples=examples,
    data_dir=options.data_dir or config.data.data_dir,
    eval_batch_size=batch,
  )
  datasets = data.load_datasets(data_cfg)
  with strategy.scope():
    logits_fn = logits_function(config, datasets.info, run_dir, options.source)
  return strategy, datasets, logits_fn


def evaluate_run(
  run_dir: str, options: EvaluationConfig = EvaluationConfig(), log: Callable[[str], None] = print
) -> dict:
  """Evaluates a run directory; returns the robustness.json payload."""
  config = load_run_config(run_dir)
  batch_size = options.batch_size or config.data.eval_batch_size
  strategy, datasets, logits_fn = _inputs(
    run_dir, config, options, options.max_examples, batch_size
  )
  run_eps = config.validation.eps
  norm = threat_model(dataclasses.replace(options, attacks=("suite",)), config.attack.norm, run_eps)
  if norm != config.attack.norm:  # The run's radius is in other units.
    eps_list = sorted(set(options.eps_list))
  else:
    eps_list = (
      sorted(set(options.eps_list) | {run_eps})
      if options.eps_list
      else default_eps_list(run_eps, norm)
    )

  total = -(-datasets.info.num_test // batch_size)
  log(
    f"evaluate: {run_dir} ({options.source}), {datasets.info.num_test} test "
    f"examples, {norm} eps {', '.join(f'{e:.4g}' for e in eps_list)}"
  )
  progress = ProgressLine(total, log)
  report = robustness.evaluate_robustness(
    logits_fn,
    datasets.test,
    eps_list,
    pgd_steps=options.pgd_steps,
    restarts=options.restarts,
    losses=tuple(options.losses),
    apgd=options.apgd,
    apgd_iters=options.apgd_iters,
    seed=config.seed,
    progress=progress,
    jit_compile=options.jit_compile,
    strategy=strategy,
    norm=norm,
  )
  warnings = masking.gradient_masking_report(report)
  for w in warnings:
    log(f"evaluate: WARNING (possible gradient masking): {w}")

  out_dir, key = _where(run_dir, options, "robustness", norm, config.attack.norm)
  os.makedirs(out_dir, exist_ok=True)
  payload = {
    "run_dir": run_dir,
    "source": options.source,
    "settings": {
      "pgd_steps": options.pgd_steps,
      "restarts": options.restarts,
      "losses": list(options.losses),
      "apgd": options.apgd,
      "apgd_iters": options.apgd_iters,
      "max_examples": options.max_examples,
    },
    **report.to_dict(),
    "gradient_masking_warnings": warnings,
  }
  name = os.path.basename(os.path.normpath(run_dir))
  payload["plot"] = curves.plot_robustness_curve(
    {name: payload["curve"]},
    os.path.join(out_dir, "robustness_curve.png"),
    per_255=plots.uses_per_255([run_eps], norm=norm),
    norm=norm,
  )
  if options.corruptions:
    corr = corruption_accuracy(logits_fn, config, options, log)
    run_io.write_json(os.path.join(out_dir, "corruptions.json"), corr)
    payload["corruptions"] = corr
  run_io.write_json(os.path.join(out_dir, "robustness.json"), payload)

  run_io.update_results(
    run_dir,
    **{
      key: {
        k: payload[k]
        for k in (
          "source",
          "norm",
          "clean_accuracy",
          "num_examples",
          "curve",
          "gradient_masking_warnings",
          "settings",
        )
      }
    },
  )
  for point in payload["curve"]:
    cols = ", ".join(f"{k} {v:.4f}" for k, v in point.items() if k != "eps")
    log(f"evaluate: eps {point['eps']:.4g}: {cols}")
  log(f"evaluate: wrote {out_dir}")
  return payload


# -- AutoAttack -----------------------------------------------------------------


def autoattack_run(
  run_dir: str, options: EvaluationConfig = EvaluationConfig(), log: Callable[[str], None] = print
) -> dict:
  """AutoAttack (standard, in the run's norm or `options.norm`) on a run's test split.

  Writes `<out_dir>/autoattack.json` (RobustBench-style: dataset, norm, eps,
  n_examples, clean and robust accuracy, accuracy after each attack, seconds
  per attack, package versions), adds it to the run's results.json under
  "autoattack" and, when robustness.json exists, redraws the robustness
  curve with the AutoAttack point. In another norm than the run's the
  directory is eval_<norm>/ and the key "autoattack_<norm>" (`_where`).
  Returns the JSON payload.
  """
  config = load_run_config(run_dir)
  aa = autoattack_options(options, config)
  strategy, datasets, logits_fn = _inputs(
    run_dir, config, options, aa.max_examples or 0, aa.batch_size
  )
  report = run_autoattack(logits_fn, datasets, aa, strategy, config.data.dataset, log)
  norm, eps = aa.norm, aa.eps
  out_dir, key = _where(run_dir, options, "autoattack", norm, config.attack.norm)
  payload = write_autoattack(report, out_dir, log, run_dir=run_dir, source=options.source)
  run_io.update_results(run_dir, **{key: {k: v for k, v in payload.items() if k != "run_dir"}})
  curve_path = os.path.join(out_dir, "robustness.json")
  if os.path.isfile(curve_path):
    curve = run_io.read_json(curve_path).get("curve")
    if curve:
      name = os.path.basename(os.path.normpath(run_dir))
      payload["plot"] = curves.plot_robustness_curve(
        {name: curve},
        os.path.join(out_dir, "robustness_curve.png"),
        autoattack={name: (eps, report.robust_accuracy)},
        norm=norm,
      )
  log_autoattack_summary(report, log)
  return payload


def run_autoattack(logits_fn, datasets, aa, strategy, dataset: str, log, what: str = ""):
  """AutoAttack `aa` (autoattack_options: every setting decided) on `datasets.test`."""
  log(
    f"evaluate: AutoAttack ({', '.join(aa.attacks)}) at {aa.norm} eps "
    f"{aa.eps:.4g} on {datasets.info.num_test} {dataset} test examples, "
    f"{what + ', ' if what else ''}{strategy.num_replicas_in_sync} device(s)"
  )
  return autoattack.run_autoattack(
    logits_fn,
    datasets.test,
    options=aa,
    dataset=dataset,
    strategy=strategy,
    num_examples=datasets.info.num_test,
    progress=lambda p: log(f"evaluate: {p.line()}"),
  )


def write_autoattack(report, out_dir: str, log: Callable[[str], None], **header) -> dict:
  """autoattack.json (`header` first) and autoattack_examples.csv in `out_dir`;
  logs the gradient-masking warnings; returns the JSON payload."""
  payload = {**header, **report.to_dict(), "examples_file": AA_EXAMPLES}
  payload["gradient_masking_warnings"] = report.masking_warnings()
  for w in payload["gradient_masking_warnings"]:
    log(f"evaluate: WARNING (possible gradient masking): {w}")
  os.makedirs(out_dir, exist_ok=True)
  run_io.write_csv(
    os.path.join(out_dir, AA_EXAMPLES),
    autoattack.AutoAttackReport.EXAMPLE_FIELDS,
    report.example_rows(),
  )
  run_io.write_json(os.path.join(out_dir, "autoattack.json"), payload)
  return payload


def log_autoattack_summary(report, log: Callable[[str], None]) -> None:
  after = ", ".join(f"{k} {v:.4f}" for k, v in report.accuracy_after.items())
  log(
    f"evaluate: AutoAttack clean {report.clean_accuracy:.4f}, robust "
    f"{report.robust_accuracy:.4f} (after {after})"
  )


def evaluate_selected(
  run_dir: str, options: EvaluationConfig, log: Callable[[str], None] = print
) -> dict:
  """Runs the suite and/or AutoAttack as `options.attacks` says."""
  out = {}
  if "suite" in options.attacks:
    out["robustness"] = evaluate_run(run_dir, options, log)
  if "autoattack" in options.attacks:
    out["autoattack"] = autoattack_run(run_dir, options, log)
  return out
