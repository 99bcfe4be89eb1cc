"""AutoAttack through `iaat_tf.evaluate` and `iaat_tf.pareto` on tiny runs (L-inf, L2)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from iaat_tf import config as cfg
from iaat_tf.runs import evaluation_config, run_evaluation
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.reports import pareto
from iaat_tf.runs import training


def _tiny_digits_run(out, method, attack, epochs, eval_eps, eval_step) -> str:
  """Trains a tiny digits run (512 examples, 64 test) into `out`."""
  config = cfg.Config(
    output_dir=str(out),
    data=cfg.DataConfig(batch_size=64, max_train_examples=512, max_eval_examples=64),
    method=method,
    attack=attack,
    train=cfg.TrainConfig(epochs=epochs, learning_rate=0.05, verbose=0),
    validation=cfg.ValidationConfig(eps=eval_eps, steps=2, step_size=eval_step, max_examples=64),
  )
  training.train(config, log=lambda _: None)
  return str(out)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  return _tiny_digits_run(
    tmp_path_factory.mktemp("runs") / "digits_pgd",
    cfg.MethodConfig(method="pgd_at", eps=0.1),
    cfg.AttackConfig(steps=2, step_ratio=0.5, min_step=0.01),
    epochs=1,
    eval_eps=0.1,
    eval_step=0.05,
  )


SMALL_AA = AutoAttackOptions(
  max_examples=48, apgd_iters=5, targets=2, fab_iters=5, square_queries=20
)
SMALL = evaluation_config.EvaluationConfig(
  attacks=("suite", "autoattack"),
  eps_list=(0.0, 0.1),
  pgd_steps=2,
  apgd=False,
  max_examples=48,
  batch_size=32,
  autoattack=SMALL_AA,
)


@pytest.mark.slow
def test_autoattack_json_results_plot_and_pareto(digits_run):
  lines = []
  out = run_evaluation.evaluate_selected(digits_run, SMALL, log=lines.append)
  aa = out["autoattack"]
  path = os.path.join(digits_run, "eval", "autoattack.json")
  with open(path) as f:
    written = json.load(f)
  assert written["norm"] == "Linf" and written["eps"] == pytest.approx(0.1)
  assert written["n_examples"] == 48 and written["dataset"] == "digits"
  assert written["robust_accuracy"] <= written["clean_accuracy"]
  assert list(written["accuracy_after_attack"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
  assert written["robust_accuracy"] == aa["robust_accuracy"]
  assert os.path.isfile(os.path.join(digits_run, "eval", "robustness.json"))
  assert aa["plot"].endswith("robustness_curve.png")
  assert any("ETA" in line for line in lines)
  with open(os.path.join(digits_run, "results.json")) as f:
    results = json.load(f)
  assert results["autoattack"]["robust_accuracy"] == aa["robust_accuracy"]
  assert "robustness" in results

  runs = pareto.collect_runs([digits_run])
  chosen, label = pareto.choose_metric(runs)
  assert "AutoAttack" in label
  assert chosen[0]["robust_accuracy"] == aa["robust_accuracy"]
  assert chosen[0]["robust_source"] == "autoattack"


def test_pareto_falls_back_when_a_run_lacks_autoattack():
  runs = [
    {
      "name": "a",
      "robust_accuracy": 0.4,
      "autoattack_accuracy": 0.3,
      "robust_source": "worst_case",
      "eval_eps": 0.2,
    },
    {
      "name": "b",
      "robust_accuracy": 0.5,
      "autoattack_accuracy": None,
      "robust_source": "worst_case",
      "eval_eps": 0.2,
    },
  ]
  chosen, label = pareto.choose_metric(runs)
  assert [r["robust_accuracy"] for r in chosen] == [0.4, 0.5]
  assert "worst-case" in label and "no AutoAttack for b" in label


@pytest.mark.slow
def test_unknown_attack_selection_is_refused(digits_run):
  with pytest.raises(ValueError, match="--attacks"):
    run_evaluation.evaluate_selected(digits_run, dataclasses.replace(SMALL, attacks=("pgd",)))


@pytest.fixture(scope="module")
def digits_l2_run(tmp_path_factory):
  """A tiny L2 IAAT run: radii, gamma and steps in L2 units."""
  return _tiny_digits_run(
    tmp_path_factory.mktemp("runs") / "digits_iaat_l2",
    cfg.MethodConfig(method="iaat", eps=0.5, gamma=0.12, warmup_epochs=1, eps_max=float("inf")),
    cfg.AttackConfig(steps=2, min_step=0.125, norm="l2"),
    epochs=2,
    eval_eps=0.5,
    eval_step=0.25,
  )


@pytest.mark.slow
def test_an_l2_run_is_evaluated_in_l2_throughout(digits_l2_run, digits_run):
  with open(os.path.join(digits_l2_run, "results.json")) as f:
    results = json.load(f)
  assert results["norm"] == "l2" and results["train_eps"] == 0.5
  # IAAT adapted the radii in L2 units, beyond what an L-inf table could hold.
  table = np.load(os.path.join(digits_l2_run, "eps_table.npy"))
  assert len(np.unique(table)) > 3 and table.max() > 0.5
  lines = []
  out = run_evaluation.evaluate_selected(
    digits_l2_run, dataclasses.replace(SMALL, eps_list=()), log=lines.append
  )
  assert out["autoattack"]["norm"] == "L2"
  assert out["autoattack"]["eps"] == pytest.approx(0.5)
  assert out["autoattack"]["settings"]["norm"] == "l2"
  assert out["robustness"]["norm"] == "l2"
  assert [p["eps"] for p in out["robustness"]["curve"]] == [0.0, 0.25, 0.5, 1.0]
  assert any("l2 eps" in line for line in lines)
  # The Pareto tool reads the norm, uses the L2 AutoAttack, and refuses to
  # put L-inf and L2 runs on one plot.
  runs = pareto.collect_runs([digits_l2_run])
  chosen, label = pareto.choose_metric(runs)
  assert runs[0]["norm"] == "l2" and "AutoAttack" in label and "L2" in label
  with pytest.raises(ValueError, match="different threat models"):
    pareto.collect_runs([digits_l2_run, digits_run])


@pytest.mark.slow
def test_another_norm_than_the_runs_needs_radii_in_its_units(digits_run):
  with pytest.raises(
    evaluation_config.EvaluationError, match="--norm=l2 differs from the run's linf"
  ):
    run_evaluation.autoattack_run(digits_run, dataclasses.replace(SMALL, norm="l2"))
  with pytest.raises(evaluation_config.EvaluationError, match="L2 radii need --norm=l2"):
    run_evaluation.autoattack_run(
      digits_run, dataclasses.replace(SMALL, autoattack=dataclasses.replace(SMALL_AA, eps=1.5))
    )
  out = run_evaluation.autoattack_run(
    digits_run,
    dataclasses.replace(SMALL, norm="l2", autoattack=dataclasses.replace(SMALL_AA, eps=1.0)),
    log=lambda _: None,
  )
  assert out["norm"] == "L2" and out["eps"] == 1.0
  # Beside the run's own-norm evaluation, never over it.
  assert os.path.isfile(os.path.join(digits_run, "eval_l2", "autoattack.json"))
  with open(os.path.join(digits_run, "results.json")) as f:
    results = json.load(f)
  assert results["autoattack_l2"]["norm"] == "L2"
  assert results.get("autoattack", {"norm": "Linf"})["norm"] == "Linf"
