"""`iaat_tf.evaluate` on real (tiny) training runs."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from iaat_tf import config as cfg
from iaat_tf.runs import evaluation_config, run_evaluation
from iaat_tf.runs import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_config(out, **data_overrides):
  return cfg.Config(
    output_dir=str(out),
    data=cfg.DataConfig(batch_size=64, **data_overrides),
    method=cfg.MethodConfig(
      method="iaat", eps=0.2, warmup_epochs=1, gamma=0.05, beta=0.5, eps_max=0.4
    ),
    attack=cfg.AttackConfig(steps=3, step_ratio=0.25, min_step=0.01),
    train=cfg.TrainConfig(epochs=2, learning_rate=0.05, verbose=0),
    validation=cfg.ValidationConfig(eps=0.1, steps=5, step_size=0.025, max_examples=128),
  )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "digits_iaat"
  training.train(_tiny_config(out), log=lambda _: None)
  return str(out)


OPTIONS = evaluation_config.EvaluationConfig(
  eps_list=(0.0, 0.05, 0.1, 0.3), pgd_steps=5, apgd_iters=10, max_examples=128
)


@pytest.mark.slow
def test_saved_model_and_checkpoint_agree_and_outputs_are_written(digits_run, tmp_path):
  from_saved = run_evaluation.evaluate_run(
    digits_run, dataclasses.replace(OPTIONS, out_dir=str(tmp_path / "a")), log=lambda _: None
  )
  from_ckpt = run_evaluation.evaluate_run(
    digits_run,
    dataclasses.replace(OPTIONS, source="checkpoint", out_dir=str(tmp_path / "b")),
    log=lambda _: None,
  )
  assert from_saved["num_examples"] == 128
  assert from_saved["clean_accuracy"] == pytest.approx(from_ckpt["clean_accuracy"])
  for a, b in zip(from_saved["curve"], from_ckpt["curve"]):
    for key in a:
      assert a[key] == pytest.approx(b[key], abs=1.5 / 128), key

  report = json.load(open(tmp_path / "a" / "robustness.json"))
  assert [p["eps"] for p in report["curve"]] == [0.0, 0.05, 0.1, 0.3]
  clean = report["clean_accuracy"]
  worst = [p["worst_case"] for p in report["curve"]]
  assert worst[0] == pytest.approx(clean)
  assert all(a >= b for a, b in zip(worst, worst[1:]))  # Monotone in eps.
  for point in report["curve"]:
    for key in ("pgd_ce", "pgd_margin", "apgd_ce", "apgd_dlr"):
      assert point[key] <= clean + 1e-9
      assert point["worst_case"] <= point[key] + 1e-9
  png = tmp_path / "a" / "robustness_curve.png"
  assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 2000
  results = json.load(open(os.path.join(digits_run, "results.json")))
  assert results["robustness"]["curve"] == from_ckpt["curve"]  # The last one.


@pytest.mark.slow
def test_training_writes_eps_plots(digits_run):
  plots = os.path.join(digits_run, "plots")
  for name in (
    "eps_histogram.png",
    "eps_per_class.png",
    "eps_extremes.png",
    "training_history.png",
  ):
    path = os.path.join(plots, name)
    assert os.path.getsize(path) > 2000
    assert open(path, "rb").read(4) == b"\x89PNG"
  results = json.load(open(os.path.join(digits_run, "results.json")))
  assert set(results["eps"]["per_class_mean"]) <= {str(c) for c in range(10)}


@pytest.mark.slow
def test_cifar10_c_when_present_and_a_clear_message_when_not(tmp_path):
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  with tfds.testing.mock_data(num_examples=32):
    out = tmp_path / "cifar"
    config = _tiny_config(out, dataset="cifar10", data_dir=str(data_dir))
    config = dataclasses.replace(
      config,
      train=dataclasses.replace(config.train, epochs=1),
      data=dataclasses.replace(config.data, batch_size=16),
    )
    training.train(config, log=lambda _: None)
    options = evaluation_config.EvaluationConfig(
      eps_list=(0.0,),
      pgd_steps=2,
      apgd=False,
      max_examples=16,
      corruptions=("gaussian_noise",),
      severities=(1, 5),
    )
    present = run_evaluation.evaluate_run(str(out), options, log=lambda _: None)
  corr = present["corruptions"]
  assert corr["available"] and set(corr["accuracy"]) == {"gaussian_noise_1", "gaussian_noise_5"}
  assert 0.0 <= corr["mean_accuracy"] <= 1.0
  # Without mock data the corrupted sets are not under data_dir.
  messages = []
  missing = run_evaluation.corruption_accuracy(
    lambda x: x, run_evaluation.load_run_config(str(out)), options, messages.append
  )
  assert not missing["available"] and "not found under --data_dir" in missing["message"]
  assert os.path.getsize(out / "eval" / "corruptions.json") > 0


def test_cli_errors_are_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(
    [sys.executable, "-m", "iaat_tf.evaluate", f"--run_dir={tmp_path / 'none'}"],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("iaat_tf.evaluate: error: ")
  assert "does not exist" in result.stderr


def test_progress_line_has_an_eta_and_a_line_per_tenth():
  lines = []
  progress = run_evaluation.ProgressLine(20, lines.append, tty=False)
  for done in range(1, 21):
    progress(done, 20)
  assert len(lines) == 10 and lines[-1].startswith("evaluate: batch 20/20 (100%)")
  assert all("ETA" in line for line in lines)


@pytest.mark.slow
def test_evaluate_keeps_other_results_and_imports_no_training_stack(digits_run, tmp_path):
  path = os.path.join(digits_run, "results.json")
  results = json.load(open(path))
  results["autoattack"] = {"kept": True}
  json.dump(results, open(path, "w"))
  run_evaluation.evaluate_run(
    digits_run,
    dataclasses.replace(
      OPTIONS, eps_list=(0.1,), apgd=False, max_examples=32, out_dir=str(tmp_path / "e")
    ),
    log=lambda _: None,
  )
  after = json.load(open(path))
  assert after["autoattack"] == {"kept": True}
  assert after["history"] == results["history"] and "robustness" in after
  code = (
    "import sys; import iaat_tf.evaluate; "
    "print(sorted(m for m in ('iaat_tf.cli.experiment', 'iaat_tf.training.runtime', "
    "'iaat_tf.training.trainer') if m in sys.modules))"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
    env=dict(os.environ, PYTHONPATH=REPO),
  )
  assert out.stdout.strip().splitlines()[-1] == "[]"
