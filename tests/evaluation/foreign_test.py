"""AutoAttack on models this package did not train (evaluation/foreign.py).

A plain Keras classifier, trained here with plain Keras (no iaat_tf), is
exported with `model.export()` and saved as `.keras`; `iaat_tf.evaluate`
attacks both on the digits test split and writes the same autoattack.json
and per-example CSV as for a run. Bad models are one-line errors.
"""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from iaat_tf.runs import foreign_evaluation
from iaat_tf.runs.evaluation_config import EvaluationConfig, EvaluationError
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.evaluation import foreign

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL_AA = dict(
  aa_eps=0.1,
  aa_max_examples=24,
  aa_apgd_iters=4,
  aa_targets=2,
  aa_fab_iters=3,
  aa_square_queries=10,
  aa_batch_size=24,
)


@pytest.fixture(scope="module")
def plain_keras_model(digits):
  """Plain Keras: 8x8 digits in [0, 255] (the model's own range) -> logits."""
  x, y = digits
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      keras.layers.Rescaling(1 / 255),
      keras.layers.Flatten(),
      keras.layers.Dense(32, activation="relu"),
      keras.layers.Dense(10),
    ]
  )
  model.compile(
    keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  )
  model.fit(x[:1200] * 255, y[:1200], epochs=4, batch_size=128, verbose=0)
  return model


def _options(**kw):
  small = AutoAttackOptions(**{k[len("aa_") :]: v for k, v in SMALL_AA.items()})
  return EvaluationConfig(
    **{"attacks": ("autoattack",), "dataset": "digits", "autoattack": small, **kw}
  )


@pytest.mark.slow
def test_model_export_savedmodel_and_keras_file(plain_keras_model, tmp_path):
  exported = str(tmp_path / "exported")
  plain_keras_model.export(exported, verbose=False)
  keras_file = str(tmp_path / "model.keras")
  plain_keras_model.save(keras_file)
  results = {}
  for kind, path in (("saved_model", exported), ("keras_model", keras_file)):
    out = str(tmp_path / f"eval_{kind}")
    payload = foreign_evaluation.autoattack_model(
      _options(**{kind: path}, out_dir=out, input_range=(0.0, 255.0)), log=lambda line: None
    )
    with open(os.path.join(out, "autoattack.json")) as f:
      saved = json.load(f)
    assert saved["robust_accuracy"] == payload["robust_accuracy"]
    assert saved["n_examples"] == 24 and saved["norm"] == "Linf"
    assert saved["model"] == path and saved["source"] == kind
    assert saved["input"]["range"] == [0.0, 255.0]
    assert 0.5 < saved["clean_accuracy"] and saved["robust_accuracy"] <= saved["clean_accuracy"]
    with open(os.path.join(out, "autoattack_examples.csv")) as f:
      rows = list(csv.DictReader(f))
    assert len(rows) == 24
    results[kind] = [r["broken_by"] if "broken_by" in r else r for r in rows]
  # The same network either way: the same per-example outcomes.
  assert results["saved_model"] == results["keras_model"]


def test_the_input_range_and_normalisation_are_applied(plain_keras_model, digits, tmp_path):
  """Fed [0, 1] images, a model trained on [0, 255] sees almost black ones."""
  x, y = digits
  path = str(tmp_path / "model.keras")
  plain_keras_model.save(path)
  accuracy = lambda fn: np.mean(np.argmax(fn(x[1400:]), 1) == y[1400:])
  right = accuracy(foreign.load_logits_fn(keras_model=path, input_range=(0, 255)))
  wrong = accuracy(foreign.load_logits_fn(keras_model=path))
  assert right > 0.8 and wrong < right - 0.3
  # (x * 255 - 0) / 1 is the same input: mean 0, std 1 change nothing; a
  # mean and std are applied after the range.
  same = foreign.load_logits_fn(keras_model=path, input_range=(0, 255), mean=[0.0], std=[1.0])
  np.testing.assert_allclose(same(x[:8]), plain_keras_model(x[:8] * 255), rtol=1e-5)
  shifted = foreign.load_logits_fn(keras_model=path, input_range=(0, 255), mean=[-10.0], std=[2.0])
  np.testing.assert_allclose(
    shifted(x[:8]), plain_keras_model((x[:8] * 255 + 10) / 2), rtol=1e-5, atol=1e-5
  )


def test_bad_models_are_one_line_errors(plain_keras_model, tmp_path, digits):
  x, _ = digits
  softmax = keras.Sequential([plain_keras_model, keras.layers.Softmax()])
  path = str(tmp_path / "softmax.keras")
  softmax.save(path)
  fn = foreign.load_logits_fn(keras_model=path)
  with pytest.raises(foreign.ForeignModelError, match="probabilities") as e:
    foreign.check_logits(fn, x[:16], 10, f"--keras_model={path}")
  assert "\n" not in str(e.value)
  wide = keras.Sequential(
    [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
  )
  wide_path = str(tmp_path / "wide.keras")
  wide.save(wide_path)
  fn = foreign.load_logits_fn(keras_model=wide_path)
  with pytest.raises(foreign.ForeignModelError) as e:
    foreign.check_logits(fn, x[:16], 10, f"--keras_model={wide_path}")
  # Both shapes, whole: no message cut inside TensorFlow's text.
  assert str(e.value) == (
    f"--keras_model={wide_path} takes images of shape 28x28x1; "
    "the dataset's are 8x8x1: check --dataset (and --image_size "
    "for ImageNet)"
  )
  exported = str(tmp_path / "wide_export")
  wide.export(exported, verbose=False)
  fn = foreign.load_logits_fn(saved_model=exported)
  with pytest.raises(
    foreign.ForeignModelError, match="takes images of shape 28x28x1; the dataset's are 8x8x1"
  ):
    foreign.check_logits(fn, x[:16], 10, f"--saved_model={exported}")
  fn = foreign.load_logits_fn(keras_model=str(tmp_path / "softmax.keras"))
  with pytest.raises(foreign.ForeignModelError, match="outputs 10 classes"):
    foreign.check_logits(fn, x[:16], 3, "m")
  with pytest.raises(foreign.ForeignModelError, match="not a readable SavedModel"):
    foreign.load_logits_fn(saved_model=str(tmp_path))


def test_models_of_several_inputs_or_outputs_are_named_as_such(tmp_path, digits):
  """Neither blamed on the data nor cut inside TensorFlow's text."""
  x, _ = digits
  a, b = keras.Input((8, 8, 1), name="image"), keras.Input((8, 8, 1), name="mask")
  logits = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Add()([a, b])))
  two_in = keras.Model([a, b], logits)
  inputs = keras.Input((8, 8, 1))
  flat = keras.layers.Flatten()(inputs)
  two_out = keras.Model(inputs, [keras.layers.Dense(10)(flat), keras.layers.Dense(10)(flat)])
  for model, name, message in (
    (two_in, "two_in", "takes 2 inputs (image, mask); evaluation needs a model of one image input"),
    (two_out, "two_out", "has 2 outputs ("),
  ):
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    exported = str(tmp_path / name)
    model.export(exported, verbose=False)
    for kind, where in (("keras_model", path), ("saved_model", exported)):
      with pytest.raises(foreign.ForeignModelError) as e:
        fn = foreign.load_logits_fn(**{kind: where})
        foreign.check_logits(fn, x[:16], 10, f"--{kind}={where}")
      words = str(e.value)
      assert words.startswith(f"--{kind}={where} ") and "\n" not in words
      assert (message if kind == "keras_model" else message.split(" (")[0]) in words
      assert "--dataset" not in words and "Binding inputs" not in words
      if name == "two_out":
        assert "one logits output [N, classes]" in words


def test_a_damaged_keras_file_says_what_is_wrong(plain_keras_model, tmp_path):
  good = tmp_path / "good.keras"
  plain_keras_model.save(str(good))
  cut = tmp_path / "cut.keras"
  cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
  text = tmp_path / "text.keras"
  text.write_text("not a model")
  for path in (cut, text):
    with pytest.raises(foreign.ForeignModelError) as e:
      foreign.load_logits_fn(keras_model=str(path))
    assert str(e.value) == (
      f"--keras_model={path} is not a readable .keras file: not a whole zip archive "
      "(cut short by a copy or a full disk, or saved in another format)"
    )
    assert "File not found" not in str(e.value)


def test_the_default_output_folder_is_named_for_the_model():
  assert EvaluationConfig(keras_model="models/foreign.keras").foreign_out_dir == "eval_foreign"
  assert EvaluationConfig(saved_model="models/exported/").foreign_out_dir == "eval_exported"
  assert EvaluationConfig(keras_model="m.keras", out_dir="o").foreign_out_dir == "o"


def test_chance_warning_names_the_input_convention():
  labels = np.repeat(np.arange(10), 36)[:359]
  words = foreign.chance_warning(0.09, labels, "pixels in [0, 1]")
  assert "at chance" in words and "pixels in [0, 1]" in words
  assert all(flag in words for flag in ("--input_range", "--input_mean", "--input_std"))
  assert foreign.chance_warning(0.95, labels, "x") is None
  # Within 3 binomial standard deviations of the majority rate (10%, n = 359).
  assert foreign.chance_warning(0.14, labels, "x") is not None
  assert foreign.chance_warning(0.20, labels, "x") is None


# The [0, 255] model given black images (a range it does not expect): every
# prediction is the same class, at chance however many images are judged.
BLACK = (0.0, 0.001)


def test_a_model_fed_the_wrong_range_stops_after_the_clean_pass(plain_keras_model, tmp_path):
  """At chance on the clean pass, before any attack, it stops with one line
  naming the input flags and the flag that goes on; nothing is written."""
  path = str(tmp_path / "model.keras")
  plain_keras_model.save(path)
  lines = []
  out = tmp_path / "e"
  with pytest.raises(EvaluationError) as stopped:
    foreign_evaluation.autoattack_model(
      _options(keras_model=path, out_dir=str(out), input_range=BLACK), log=lines.append
    )
  words = str(stopped.value)
  assert "\n" not in words and "at chance" in words and "pixels in [0, 0.001]" in words
  assert all(flag in words for flag in ("--input_range", "--input_mean", "--input_std"))
  assert "--allow_chance" in words
  assert not any("apgd" in line for line in lines) and not out.exists()


@pytest.mark.slow
def test_allow_chance_goes_on_with_a_loud_warning(plain_keras_model, tmp_path):
  """--allow_chance: AutoAttack runs; the log warns before and after it,
  naming the input flags, and autoattack.json records the convention and
  the warning."""
  path = str(tmp_path / "model.keras")
  plain_keras_model.save(path)
  lines = []
  payload = foreign_evaluation.autoattack_model(
    _options(keras_model=path, out_dir=str(tmp_path / "e"), input_range=BLACK, allow_chance=True),
    log=lines.append,
  )
  warnings = [l for l in lines if "WARNING" in l]
  assert len(warnings) == 2 and all("--input_range" in l for l in warnings)
  assert "--allow_chance: AutoAttack runs anyway" in warnings[0]
  assert payload["input"]["convention"] == "pixels in [0, 0.001]"
  assert "at chance" in payload["input_warning"]
  assert any("AutoAttack only" in l for l in lines)
  right = foreign_evaluation.autoattack_model(
    _options(keras_model=path, out_dir=str(tmp_path / "r"), input_range=(0.0, 255.0)),
    log=lines.append,
  )
  assert right["input_warning"] is None
  assert right["input"]["convention"] == "pixels in [0, 255]"


@pytest.mark.slow
def test_cli_on_a_saved_model_and_its_errors(plain_keras_model, tmp_path):
  exported = str(tmp_path / "exported")
  plain_keras_model.export(exported, verbose=False)
  run = lambda *args: subprocess.run(
    [sys.executable, "-m", "iaat_tf.evaluate", *args],
    capture_output=True,
    text=True,
    cwd=tmp_path,
    timeout=600,
    env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"},
  )
  result = run(
    f"--saved_model={exported}",
    "--dataset=digits",
    "--input_range=0,255",
    *[f"--{k}={v}" for k, v in SMALL_AA.items()],
  )
  assert result.returncode == 0, result.stderr
  assert "AutoAttack clean" in result.stdout and result.stderr == ""
  with open(tmp_path / "eval_exported" / "autoattack.json") as f:
    assert json.load(f)["n_examples"] == 24
  for args, message in (
    ([f"--saved_model={exported}"], "needs --dataset"),
    ([f"--saved_model={exported}", "--run_dir=x", "--dataset=digits"], "exactly one of"),
    ([f"--keras_model={exported}", "--dataset=digits"], "not a .keras file"),
    ([f"--saved_model={exported}", "--dataset=digits", "--attacks=suite"], "reads a training run"),
    ([f"--saved_model={exported}", "--dataset=digits", "--input_range=1,0"], "low < high"),
    ([f"--saved_model={tmp_path / 'none'}", "--dataset=digits"], "does not exist"),
    ([f"--saved_model={exported}", "--dataset=digits"], "needs --aa_eps"),
    (
      [
        f"--saved_model={exported}",
        "--dataset=digits",
        "--aa_eps=0.1",
        "--num_examples=300",
        "--eps_list=0.1",
      ],
      "--eps_list and --num_examples apply only to a training run's evaluation",
    ),
    (
      [f"--saved_model={exported}", "--dataset=digits", "--aa_eps=0.1", "--restarts=2"],
      "--restarts applies only to",
    ),
    # At chance on the clean pass: stopped before AutoAttack.
    (
      [f"--saved_model={exported}", "--dataset=digits", "--aa_eps=0.1", "--input_range=0,0.001"],
      "stopped before AutoAttack (--allow_chance runs it anyway)",
    ),
  ):
    result = run(*args)
    assert result.returncode == 2, (args, result.stderr)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_documented_python_block_runs():
  """docs/evaluation.md: run_autoattack on a keras.Model and a tf.function."""
  from tests import readme_snippets  # pylint: disable=g-import-not-at-top

  names = readme_snippets.run_block(
    "## AutoAttack for models this package did not train",
    path=os.path.join(REPO, "docs", "evaluation.md"),
  )
  report, same = names["report"], names["same"]
  assert report.num_examples == same.num_examples == 64
  # The same model either way.
  np.testing.assert_array_equal(report.robust, same.robust)


def test_missing_tfds_data_is_told_in_evaluates_words(tmp_path):
  """No --download hint the command has not got, no tfds internals."""
  empty = tmp_path / "tfds"
  empty.mkdir()
  options = _options(keras_model="unused.keras", dataset="mnist", data_dir=str(empty))
  with pytest.raises(EvaluationError) as e:
    foreign_evaluation.autoattack_model(options, log=lambda _: None)
  words = str(e.value)
  assert f"--data_dir={empty} holds no prepared tfds 'mnist' data" in words
  assert f"tfds build mnist --data_dir={empty}" in words
  assert "download=True" not in words and "pass --download" not in words
