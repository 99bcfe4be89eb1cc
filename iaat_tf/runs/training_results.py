"""The training job's results (TensorFlow): the final weights, the test, the files.

`finish(fit)` (after runs/training_steps.py's fit) loads the weights
--export_model names, tests them on the test split, and on the chief writes
train_labels.npy, eps_table.npy, the plots, the SavedModel and results.json
(last, atomically); it returns the results.
"""

import os
import sys
from typing import Callable

import numpy as np

from iaat_tf import data, provenance, run_io
from iaat_tf.config import ADAPTIVE_METHODS, Config
from iaat_tf.models import export
from iaat_tf.reports import curves, example_lookup, plots
from iaat_tf.training import early_stopping, overfitting


def progress_mode(verbose: int):
  """(fit verbosity, print a summary line per epoch, show a batch bar)."""
  if verbose <= 0:
    return 0, False, False
  if verbose >= 2:
    return 2, False, False
  return 0, True, sys.stdout.isatty()


def finish(fit) -> dict:
  """The final weights tested and written (`fit`: training_steps.TrainingRun)."""
  config, log = fit.config, fit.log
  history_rows = run_io.read_history(fit.paths["history"])
  best = _choose_final_weights(fit.trainer, config, fit.datasets, fit.paths["best"], log)
  results = _test_and_summarise(fit, history_rows, best)
  if fit.chief:
    _write_outputs(fit.trainer, config, fit.datasets.info, results)
  log(
    f"iaat_tf: clean {results['final']['clean_accuracy']:.4f}, "
    f"PGD {results['final']['pgd_accuracy']:.4f}; wrote {config.output_dir}"
  )
  return results


def _choose_final_weights(
  trainer, config: Config, datasets: data.Datasets, best_dir: str, log: Callable[[str], None]
):
  """Loads the weights --export_model names; the best-epoch state or None."""
  best = None
  if datasets.validation is not None:
    best = early_stopping.read_state(best_dir)
    if best is not None and config.export_model == "best":
      early_stopping.restore_best_weights(trainer.classifier, best_dir)
      log(
        f"iaat_tf: restored the best validation weights (epoch {best['epoch']}, "
        f"{best['monitor']} {best['value']:.4f})"
      )
  if config.export_model == "ema":  # The final weight average replaces the raw.
    trainer.weight_average.swap()
    log(f"iaat_tf: testing and exporting the weight average (decay {config.train.ema_decay})")
  return best


def _test_and_summarise(fit, history_rows: list, best) -> dict:
  """Tests the final weights; the results.json payload (without outputs)."""
  config, datasets, log = fit.config, fit.datasets, fit.log
  info = datasets.info
  fit_verbose, _, bar = progress_mode(config.train.verbose)
  log(
    "iaat_tf: final evaluation on the test split "
    f"(clean + {config.attack.norm} PGD-{config.validation.steps} at eps={config.validation.eps:.5f})"
  )
  final = fit.trainer.evaluate(datasets.test, verbose=1 if bar else fit_verbose, return_dict=True)
  history = run_io.history_columns(history_rows)
  results = {
    "provenance": provenance.provenance(config.train.precision),
    "method": config.method.method,
    "loss": config.method.loss,
    "dataset": info.name,
    "model": config.model.name,
    "train_eps": config.method.eps,
    "norm": config.attack.norm,  # The units of every radius here.
    "num_train": info.num_train,
    "num_test": info.num_test,
    "replicas": fit.strategy.num_replicas_in_sync,
    "epochs": config.train.epochs,
    "resumed_from_epoch": fit.initial_epoch,
    "train_seconds": float(sum(s for s in history.get("epoch_seconds", []) if s)),
    "final": {
      "clean_accuracy": float(final["clean_acc"]),
      "pgd_accuracy": float(final["pgd_acc"]),
      "eval_eps": config.validation.eps,
      "eval_pgd_steps": config.validation.steps,
    },
    "history": history,
    # The first collapse of validation PGD accuracy with clean accuracy
    # held (training/overfitting.py), or None.
    "catastrophic_overfitting": overfitting.detect(history_rows, config.method.method),
    "train_attack": config.attack.name,
    # The weights `final` measured and the SavedModel holds.
    "weights": (
      "best"
      if best is not None and config.export_model == "best"
      else "ema"
      if config.export_model == "ema"
      else "last"
    ),
    "ema_decay": config.train.ema_decay,
  }
  if best is not None:
    results["early_stopping"] = {
      "best_epoch": best["epoch"],
      "monitor": best["monitor"],
      "best_value": best["value"],
      "best_metrics": best["metrics"],
      "num_validation": info.num_validation,
      "final_weights": config.export_model,
    }
  return results


def _write_outputs(trainer, config: Config, info: data.DatasetInfo, results: dict) -> None:
  """The chief's files: labels, eps table, plots, SavedModel, results.json."""
  out = config.output_dir
  labels = example_lookup.read_train_labels(config.data)[: info.num_train]
  np.save(os.path.join(out, "train_labels.npy"), labels)
  eps_table = trainer.eps_table.numpy()
  if config.method.method in ADAPTIVE_METHODS:
    np.save(os.path.join(out, "eps_table.npy"), eps_table)
    results["eps"] = plots.eps_summary(eps_table, labels)
  elif config.method.method == "pgd_at":  # Every example at --eps.
    results["eps"] = {
      **plots.eps_summary(np.full(info.num_train, config.method.eps), labels),
      "uniform": True,
    }
  results["plots"] = write_run_plots(config, out, eps_table, labels, results["history"])
  if config.export:
    results["saved_model"] = export.export_classifier(
      trainer.classifier, os.path.join(out, "saved_model"), info.image_shape
    )
  run_io.write_json(os.path.join(out, run_io.RESULTS), results)


def write_run_plots(
  config: Config, out: str, eps_table: np.ndarray, labels: np.ndarray, history: dict, k: int = 8
) -> dict:
  """PNGs of the eps table and the training curves in output_dir/plots."""
  plot_dir = os.path.join(out, "plots")
  os.makedirs(plot_dir, exist_ok=True)
  written = {}
  norm = config.attack.norm  # The units of --eps.
  per_255 = plots.uses_per_255([config.method.eps], norm=norm)
  if history:
    written["history"] = curves.plot_training_history(
      history, os.path.join(plot_dir, "training_history.png"), per_255=per_255, norm=norm
    )
    if any(k.startswith("eps_table_q") for k in history):
      written["eps_over_epochs"] = curves.plot_eps_over_epochs(
        history,
        os.path.join(plot_dir, "eps_over_epochs.png"),
        warmup_eps=config.method.eps,
        eval_eps=config.validation.eps,
        warmup_epochs=config.method.warmup_epochs,
        per_255=per_255,
        norm=norm,
      )
  if config.method.method in ADAPTIVE_METHODS and eps_table.size:
    written["eps_histogram"] = plots.plot_eps_histogram(
      eps_table,
      os.path.join(plot_dir, "eps_histogram.png"),
      title=f"Learned radii ({config.method.method}, {config.data.dataset})",
      eps_reference=config.method.eps,
      per_255=per_255,
      norm=norm,
    )
    written["eps_per_class"] = plots.plot_eps_per_class(
      eps_table, labels, os.path.join(plot_dir, "eps_per_class.png"), per_255=per_255, norm=norm
    )
    smallest, largest = plots.extreme_indices(eps_table, k)
    ids = np.concatenate([smallest, largest])
    images, image_labels = example_lookup.train_examples_by_index(config.data, ids)
    written["eps_extremes"] = plots.plot_eps_extremes_grid(
      images,
      eps_table[ids],
      os.path.join(plot_dir, "eps_extremes.png"),
      k=k,
      labels=image_labels,
      per_255=per_255,
    )
  return written
