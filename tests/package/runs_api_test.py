"""iaat_tf.runs: the four commands as Python calls (docs/python_api.md).

Each job takes the config its command's flags build, refuses a bad one with
the command's one-line message before TensorFlow is needed, and runs it:
training and AutoAttack on a tiny digits run, the Pareto table of it, and a
frontier whose runs are simulated (its real runs are the command's
end-to-end test).
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from iaat_tf import runs
from iaat_tf.config import Config, ConfigError, DataConfig, MethodConfig, ModelConfig, TrainConfig
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.runs import evaluation_config, frontier_config, frontier_run
from iaat_tf.runs import pareto_run, training  # noqa: F401  (what runs.X loads lazily, for Bazel)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_jobs_refuse_bad_configs_in_one_line_without_tensorflow():
  """Run in a fresh interpreter whose TensorFlow import fails: each job's
  checks come first."""
  code = """
import sys
sys.modules["tensorflow"] = None  # Any import of it fails.
from iaat_tf import runs
from iaat_tf.config import Config
for call in (
  lambda: runs.train(Config(output_dir="")),
  lambda: runs.evaluate(runs.EvaluationConfig()),
  lambda: runs.frontier(runs.FrontierConfig()),
  lambda: runs.pareto(runs.ParetoConfig()),
):
  try:
    call()
  except ValueError as e:
    print(type(e).__name__, "|", e)
"""
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == [
    "ConfigError | --output_dir is required",
    "EvaluationError | give exactly one of --run_dir (a training run), "
    "--saved_model=DIR or --keras_model=FILE.keras, got none",
    "FrontierError | --experiment is required (e.g. --experiment=quickstart)",
    "ValueError | --runs is required",
  ]


def _tiny(out: str) -> Config:
  return Config(
    output_dir=out,
    data=DataConfig(dataset="digits", batch_size=64, max_train_examples=256),
    model=ModelConfig(name="small_cnn"),
    method=MethodConfig(method="iaat", eps=0.3, gamma=0.05, warmup_epochs=1),
    train=TrainConfig(epochs=2, optimizer="adam", learning_rate=1e-3, verbose=0),
    export=False,
  )


@pytest.mark.slow
def test_train_evaluate_and_pareto_from_python(tmp_path):
  out = str(tmp_path / "run")
  lines = []
  results = runs.train(_tiny(out), log=lines.append)
  assert results["epochs"] == 2 and 0 < results["final"]["clean_accuracy"] <= 1
  assert json.load(open(os.path.join(out, "config.json")))["method"]["method"] == "iaat"
  # A second call is the command's rerun: finished, nothing to do.
  again = []
  assert runs.train(_tiny(out), log=again.append)["final"] == results["final"]
  assert len(again) == 1 and "finished" in again[0]
  with pytest.raises(ConfigError, match="--learning_rate"):
    other = _tiny(out)
    runs.train(
      dataclasses.replace(other, train=dataclasses.replace(other.train, learning_rate=0.1))
    )
  report = runs.evaluate(
    runs.EvaluationConfig(
      run_dir=out,
      attacks=("autoattack",),
      source="checkpoint",
      autoattack=AutoAttackOptions(
        eps=0.2, max_examples=32, apgd_iters=2, targets=1, fab_iters=2, square_queries=2
      ),
    ),
    log=lambda _: None,
  )
  aa = report["autoattack"]
  assert aa["n_examples"] == 32 and 0 <= aa["robust_accuracy"] <= aa["clean_accuracy"]
  with pytest.raises(evaluation_config.EvaluationError, match="no saved_model"):
    runs.evaluate(runs.EvaluationConfig(run_dir=out, attacks=("autoattack",)))
  csv_path, png_path = runs.pareto(runs.ParetoConfig(runs=out, out_dir=str(tmp_path / "p")))
  assert os.path.isfile(csv_path) and os.path.getsize(png_path) > 1000


def test_frontier_from_python(tmp_path, monkeypatch, frontier_run_record):
  """runs.frontier checks, runs every (setting, seed) and writes the page;
  here each run's numbers are drawn instead of trained."""
  monkeypatch.setattr(frontier_run.frontier_cache, "check_training", lambda *args, **kwargs: None)

  def fake(setting, seed, options, experiment_path, env=None):
    clean, aa = {"pgd_at_eps0.1": (0.99, 0.3), "pgd_at_eps0.3": (0.95, 0.7)}.get(
      setting.name, (0.97, 0.5)
    )
    return frontier_run_record(setting, seed, clean + 0.001 * seed, aa + 0.01 * seed)

  monkeypatch.setattr(frontier_run, "train_and_evaluate", fake)
  options = runs.FrontierConfig(
    experiment="quickstart",
    out_dir=str(tmp_path),
    pgd_at_eps=(0.1, 0.3),
    iaat=("eps=0.3",),
    seeds=(0, 1, 2),
    uniform_ramp=False,
  )
  payload = runs.frontier(options, log=lambda _: None)
  assert [s["setting"] for s in payload["settings"]] == [
    "pgd_at_eps0.1",
    "pgd_at_eps0.3",
    "iaat_eps0.3",
  ]
  assert (tmp_path / "frontier.md").is_file() and (tmp_path / "frontier.png").is_file()
  with pytest.raises(frontier_config.FrontierError, match="at least one radius"):
    runs.frontier(dataclasses.replace(options, pgd_at_eps=()))
