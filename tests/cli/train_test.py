"""`python -m iaat_tf.main`: end to end, every flagfile, and bad input."""

import glob
import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags
from absl.testing import flagsaver

from iaat_tf import config as cfg
from iaat_tf import run_io
from iaat_tf.cli import train
from iaat_tf.cli import flags as flag_fields
from iaat_tf.cli import flags_config
from tests import child_process

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Shorter than tests/conftest.py's tiny digits run: half its images, 1-step PGD.
SHORT = {"max_train_examples": 128, "pgd_steps": 1, "eval_pgd_steps": 1}
FLAGFILES = sorted(glob.glob(os.path.join(REPO, "flags", "*.flags")))


@pytest.mark.slow
def test_main_end_to_end_on_mock_cifar10(tmp_path):
  out = str(tmp_path / "run")
  with tfds.testing.mock_data(num_examples=64):
    with flagsaver.flagsaver(
      dataset="cifar10",
      data_dir=str(tmp_path),
      model="small_cnn",
      method="iaat",
      eps="8/255",
      warmup_epochs=1,
      gamma="2/255",
      epochs=2,
      batch_size=16,
      eval_batch_size=32,
      pgd_steps=2,
      eval_pgd_steps=2,
      val_examples=32,
      output_dir=out,
      verbose=0,
    ):
      train.run(["iaat_tf.main"])

  results = json.load(open(os.path.join(out, "results.json")))
  assert results["method"] == "iaat" and results["dataset"] == "cifar10"
  assert results["num_train"] == 64 and results["epochs"] == 2
  for key in ("clean_accuracy", "pgd_accuracy"):
    assert 0.0 <= results["final"][key] <= 1.0
  assert results["final"]["pgd_accuracy"] <= results["final"]["clean_accuracy"]
  assert len(results["history"]["loss"]) == 2
  assert "val_pgd_acc" in results["history"]
  config = json.load(open(os.path.join(out, "config.json")))
  assert config["method"]["method"] == "iaat"

  # The checkpoint holds the eps table and the optimizer (whose step count
  # gives the epoch); it is numbered by finished epochs.
  ckpt = tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))
  reader = tf.train.load_checkpoint(ckpt)
  names = reader.get_variable_to_shape_map()
  table_key = next(k for k in names if k.startswith("eps_table"))
  saved_table = reader.get_tensor(table_key)
  np.testing.assert_array_equal(saved_table, np.load(os.path.join(out, "eps_table.npy")))
  assert saved_table.shape == (64,) and (saved_table > 0).any()
  assert any(k.startswith("optimizer") for k in names)
  assert ckpt.endswith("ckpt-2")
  assert reader.get_tensor(next(k for k in names if "iterations" in k)) == 2 * 64 // 16
  labels = np.load(os.path.join(out, "train_labels.npy"))
  assert labels.shape == (64,)

  # The SavedModel serves logits on [0, 1] images.
  loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
  images = tf.random.uniform([5, 32, 32, 3], seed=1)
  logits = loaded.serve(images)
  assert logits.shape == (5, 10) and logits.dtype == tf.float32
  signature = loaded.signatures["serving_default"]
  np.testing.assert_allclose(list(signature(images=images).values())[0], logits, atol=1e-5)


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_every_flagfile_parses_into_a_valid_config(path, monkeypatch):
  monkeypatch.chdir(REPO)  # Flagfiles may include others by relative path.
  with flagsaver.flagsaver():
    FLAGS(["iaat_tf.main", f"--flagfile={path}"])
    config = flags_config.config_from_flags(FLAGS)
  assert config.output_dir.startswith("runs/")
  assert 0 < config.method.eps <= config.method.eps_max


def test_flagfiles_cover_the_documented_experiments():
  names = {os.path.basename(p) for p in FLAGFILES}
  assert {
    "quickstart.flags",
    "cifar10_wrn_pgd_at.flags",
    "cifar10_wrn_iaat.flags",
    "cifar100_wrn_iaat.flags",
    "imagenet_resnet50_iaat.flags",
  } <= names


def _run_main(args, tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run(
    [sys.executable, "-m", "iaat_tf.main", *args],
    cwd=str(tmp_path),
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _bad_npz(tmp_path):
  path = tmp_path / "bad.npz"
  np.savez(path, x=np.zeros([10, 4, 4, 3], np.uint8), y=np.zeros([7], np.int64))
  return str(path)


BAD_INPUTS = {
  "unknown_dataset": (["--dataset=cifar11"], "unknown --dataset='cifar11'"),
  "unknown_model": (["--model=vgg"], "unknown --model='vgg'"),
  "unknown_method": (["--method=trades"], "unknown --method='trades'"),
  "eps_out_of_range": (["--eps=300/255", "--eps_max=2"], "out of range"),
  "eps_not_a_number": (["--eps=eight"], "not a number or fraction"),
  "negative_gamma": (["--gamma=-0.1"], "out of range"),
  "missing_data_dir": (
    ["--dataset=cifar10", "--data_dir=/nonexistent/tfds"],
    "--data_dir=/nonexistent/tfds does not exist",
  ),
  "no_data_dir": (["--dataset=cifar10"], "pass --data_dir"),
  "missing_flagfile": (
    ["--flagfile=nope.flags"],
    "--flagfile=nope.flags: no such file, and no shipped flagfile",
  ),
  "unknown_flag": (["--epochz=3"], "Unknown command line flag 'epochz'"),
  "bad_int": (["--epochs=ten"], "--epochs=ten"),
  "missing_output_dir": (["--output_dir="], "--output_dir is required"),
  "sync_bn_in_attacks": (["--sync_batchnorm", "--attack_bn_mode=train"], "is not supported"),
  "image_size_on_digits": (["--image_size=32"], "--image_size applies to imagenet2012 only"),
  "s_minus_with_cheap": (
    ["--method=iaat_cheap", "--s_minus=adversarial"],
    "--s_minus=adversarial is the authors' Algorithm 2 code",
  ),
  "fgsm_rs_with_alg2": (
    ["--method=iaat", "--train_attack=fgsm_rs"],
    "--train_attack=fgsm_rs trains --method=pgd_at or iaat_cheap",
  ),
  "fgsm_rs_with_trades": (
    ["--method=pgd_at", "--train_attack=fgsm_rs", "--loss=trades"],
    "is a cross-entropy attack",
  ),
  "unknown_train_attack": (["--train_attack=fgsm"], "unknown --train_attack='fgsm'"),
  "unknown_norm": (["--norm=l1"], "unknown --norm='l1'"),
  "l2_radius_under_linf": (["--eps=2", "--eps_max=2"], "L2 radii need --norm=l2"),
  "negative_l2_radius": (["--norm=l2", "--gamma=-0.1"], "an L2 radius is >= 0"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_exit_2(name, tmp_path):
  args, message = BAD_INPUTS[name]
  out = tmp_path / "out"
  result = _run_main([f"--output_dir={out}", "--epochs=1", *args], tmp_path)
  assert result.returncode == 2, result.stderr
  lines = [l for l in result.stderr.strip().splitlines() if l.startswith("iaat_tf")]
  assert len(lines) == 1 and lines[0].startswith("iaat_tf: error: "), result.stderr
  assert message in lines[0]
  assert not out.exists()  # Nothing half-written.


@pytest.mark.slow
def test_malformed_flagfile_and_bad_npz(tmp_path):
  flagfile = tmp_path / "bad.flags"
  flagfile.write_text("--dataset=digits\nepochs 3\n")
  result = _run_main([f"--flagfile={flagfile}", f"--output_dir={tmp_path / 'o1'}"], tmp_path)
  assert result.returncode == 2 and "epochs 3" in result.stderr
  assert not (tmp_path / "o1").exists()
  result = _run_main(
    ["--dataset=npz", f"--npz_path={_bad_npz(tmp_path)}", f"--output_dir={tmp_path / 'o2'}"],
    tmp_path,
  )
  assert result.returncode == 2 and "one label per image" in result.stderr
  assert not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_cli_mirrored_on_two_devices_matches_one_device(tmp_path):
  """The real pipeline and flags: --strategy=mirrored (2 CPUs) vs default.

  Separate processes: collective keys of MirroredStrategy instances created
  earlier in the pytest process would clash with a differently shaped model.
  """
  tables = {}
  for strategy in ("default", "mirrored"):
    out = tmp_path / strategy
    devices = ["--num_virtual_devices=2"] if strategy == "mirrored" else []
    result = _run_main(
      [
        "--dataset=digits",
        "--model=small_cnn",
        "--method=iaat",
        "--eps=0.2",
        "--warmup_epochs=1",
        "--gamma=0.05",
        "--beta=0.5",
        "--eps_max=0.4",
        "--epochs=3",
        "--batch_size=32",
        "--max_train_examples=256",
        "--pgd_steps=3",
        "--eval_pgd_steps=2",
        "--val_examples=64",
        "--max_test_examples=64",
        f"--strategy={strategy}",
        *devices,
        f"--output_dir={out}",
        "--verbose=0",
        "--export=false",
      ],
      tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(out / "results.json"))
    assert results["replicas"] == (2 if strategy == "mirrored" else 1)
    tables[strategy] = np.load(out / "eps_table.npy")
  np.testing.assert_allclose(tables["default"], tables["mirrored"], atol=1e-6)
  assert len(np.unique(tables["default"])) > 3  # Adapted, not just warmup values.


# -- issue 9: nothing lost, nothing noisy -------------------------------------

QUICK = [
  f"--flagfile={os.path.join(REPO, 'flags', 'quickstart.flags')}",
  "--epochs=2",
  "--max_train_examples=256",
  "--val_examples=64",
]


def _quiet_env(**extra):
  env = dict(os.environ, PYTHONPATH=REPO, **extra)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # The default verbosity of a user.
  return env


def _snapshot_files(root):
  found = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      path = os.path.join(dirpath, name)
      st = os.stat(path)
      found[os.path.relpath(path, root)] = (st.st_mtime_ns, open(path, "rb").read())
  return found


def test_help_lists_grouped_flags_without_tensorflow(tmp_path):
  env = child_process.no_tensorflow_env(tmp_path)
  for module, expected in (
    (
      "iaat_tf.main",
      [
        "Data:",
        "Method (radius schedule):",
        "--max_test_examples",
        "--val_examples",
        "--overwrite",
        "--debug",
        "[default: 8/255 (linf), 0.5 (l2)]",
        "--norm",
      ],
    ),
    ("iaat_tf.evaluate", ["Attacks:", "--num_examples", "[default: 1000]"]),
    ("iaat_tf.pareto", ["Pareto plot:", "--runs", "--out_dir"]),
  ):
    result = child_process.run(module, ["--help"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for text in expected:
      assert text in result.stdout, (module, text)


def test_every_training_flag_is_in_one_help_group():
  grouped = [n for _, names in flags_config.HELP_GROUPS for n in names]
  assert len(grouped) == len(set(grouped))
  # Generated from the config's fields (cli/flags.py) and --alg2_preset.
  defined = {
    f.name for module in (flags_config, flag_fields) for f in FLAGS.get_flags_for_module(module)
  }
  assert defined <= set(grouped) <= defined | {"debug"}


def test_errors_found_without_tensorflow_are_one_line(tmp_path):
  env = child_process.no_tensorflow_env(tmp_path)
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  cases = [
    ("iaat_tf.evaluate", [f"--run_dir={tmp_path / 'none'}"], "does not exist"),
    ("iaat_tf.evaluate", [f"--run_dir={run_dir}"], "no config.json"),
    ("iaat_tf.evaluate", ["--source=bogus"], "unknown --source='bogus'"),
    ("iaat_tf.evaluate", ["--eps_list=abc"], "not a number or fraction"),
    ("iaat_tf.evaluate", ["--max_examples=3"], "use --num_examples"),
    ("iaat_tf.pareto", ["--bogus"], "Unknown command line flag 'bogus'"),
    ("iaat_tf.pareto", [], "--runs is required"),
    ("iaat_tf.main", ["--eval_max_examples=3"], "use --val_examples"),
    ("iaat_tf.main", ["--output_dir=x", "--eps=2"], "out of range"),
  ]
  for module, args, message in cases:
    if module == "iaat_tf.evaluate" and not any(a.startswith("--run_dir") for a in args):
      args = [f"--run_dir={run_dir}", *args]
    result = child_process.run(module, args, env, tmp_path)
    prog = "iaat_tf" if module == "iaat_tf.main" else module
    assert result.returncode == 2, (args, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr
    assert message in lines[0], lines[0]


@pytest.mark.slow
def test_quick_start_is_quiet_and_a_rerun_changes_nothing(tmp_path):
  out = tmp_path / "quick"
  result = child_process.run(
    "iaat_tf.main", [*QUICK, f"--output_dir={out}"], _quiet_env(), tmp_path
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr == ""  # No TF preamble, cuInit or cpu_feature_guard lines.
  lines = result.stdout.strip().splitlines()
  assert all(l.startswith(("iaat_tf: ", "epoch ")) for l in lines), result.stdout
  assert [l.split(" - ")[0] for l in lines if l.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]

  # history.csv and results.json number epochs from 1; files have mode 0644.
  results = json.load(open(out / "results.json"))
  assert results["history"]["epoch"] == [1, 2]
  assert results["train_seconds"] > 0
  with open(out / "history.csv") as f:
    assert [row.split(",")[0] for row in f.read().split()[1:]] == ["1", "2"]
  mask = os.umask(0)
  os.umask(mask)
  for name in ("training_history.png", "eps_histogram.png", "eps_extremes.png"):
    assert os.stat(out / "plots" / name).st_mode & 0o777 == 0o666 & ~mask

  # TensorBoard: every per-epoch value (train and validation), the learning
  # rate, images/s, the eps-table histogram and the settings.
  tags = {}
  for split in ("train", "validation"):
    for event_file in glob.glob(str(out / "tensorboard" / split / "events.*")):
      for event in tf.compat.v1.train.summary_iterator(event_file):
        for value in event.summary.value:
          tags.setdefault(split, set()).add(value.tag)
  assert {
    "loss",
    "train_acc",
    "clean_acc",
    "eps_mean",
    "learning_rate",
    "images_per_second",
    "epoch_seconds",
    "eps_table",
    "eps_table_mean",
    "settings",
  } <= tags["train"]
  assert {"loss", "clean_acc", "pgd_acc"} <= tags["validation"]

  # evaluate adds a curve; a rerun with the same flags keeps everything.
  results["robustness"] = {"curve": [{"eps": 0.2, "worst_case": 0.5}]}
  results["autoattack"] = {"accuracy": 0.4}
  with open(out / "results.json", "w") as f:
    json.dump(results, f)
  before = _snapshot_files(out)
  again = child_process.run("iaat_tf.main", [*QUICK, f"--output_dir={out}"], _quiet_env(), tmp_path)
  assert again.returncode == 0, again.stderr
  assert again.stderr == ""
  assert "holds a finished run" in again.stdout and "--overwrite" in again.stdout
  assert _snapshot_files(out) == before  # results.json, history, plots, TB, model.

  # Starting over is explicit.
  fresh = child_process.run(
    "iaat_tf.main",
    [*QUICK, "--epochs=1", "--overwrite", f"--output_dir={out}"],
    _quiet_env(),
    tmp_path,
  )
  assert fresh.returncode == 0, fresh.stderr[-3000:]
  results = json.load(open(out / "results.json"))
  assert results["epochs"] == 1 and results["history"]["epoch"] == [1]
  assert "robustness" not in results and "autoattack" not in results
  assert len(glob.glob(str(out / "tensorboard" / "train" / "events.*"))) == 1


@pytest.mark.slow
def test_pgd_at_reports_the_radius_it_trained_at(tmp_path):
  from iaat_tf.runs import training  # pylint: disable=g-import-not-at-top

  out = tmp_path / "pgd"
  config = cfg.Config(
    output_dir=str(out),
    export=False,
    data=cfg.DataConfig(max_train_examples=128, batch_size=64, max_eval_examples=64),
    method=cfg.MethodConfig(method="pgd_at", eps=0.1),
    attack=cfg.AttackConfig(steps=2, step_ratio=0.25, min_step=0.01),
    train=cfg.TrainConfig(epochs=1, learning_rate=0.05, verbose=0),
    validation=cfg.ValidationConfig(eps=0.1, steps=2, step_size=0.05, max_examples=64),
  )
  results = training.train(config, log=lambda _: None)
  eps = results["eps"]
  assert eps["uniform"] and eps["mean"] == pytest.approx(0.1)
  assert eps["min"] == pytest.approx(0.1) and eps["zero_fraction"] == 0.0
  assert not (out / "eps_table.npy").exists()  # No table is learned.
  assert "eps_table_mean" not in results["history"]
  assert results["history"]["eps_mean"] == [pytest.approx(0.1)]
  # Provenance: a reader of either file can tell which code made it.
  import iaat_tf  # pylint: disable=g-import-not-at-top
  from iaat_tf import provenance  # pylint: disable=g-import-not-at-top

  with open(out / "config.json") as f:
    saved = json.load(f)["provenance"]
  checkout = provenance.git_commit()  # None outside a git checkout (Bazel).
  for record in (saved, results["provenance"]):
    assert record["iaat_tf"] == iaat_tf.__version__
    assert record["git_commit"] == (checkout["commit"] if checkout else None)
    assert record["tensorflow"] and record["keras"] and record["python"]
    assert record["devices"]["CPU"] >= 1 and record["precision"] == "float32"


def test_a_diverging_run_stops_with_one_line_and_keeps_no_nan_epoch(tmp_path, tiny_digits_flags):
  """The NaN check runs once per epoch (no per-batch host sync) and stops
  before history.csv and the checkpoint record the diverged epoch."""
  out = tmp_path / "nan"
  with flagsaver.flagsaver(
    **tiny_digits_flags(out, method="pgd_at", eps="0.1", learning_rate=1e30, epochs=4, **SHORT)
  ):
    with pytest.raises(run_io.TrainingDiverged) as raised:
      train.run(["iaat_tf.main"])
  message = str(raised.value)
  assert "\n" not in message
  bad = int(re.search(r"training diverged: the loss of epoch (\d+) is", message).group(1))
  rows = run_io.read_history(str(out / "history.csv"))
  assert len(rows) == bad - 1
  assert all(np.isfinite(r["loss"]) for r in rows)
  saved = os.listdir(out / "checkpoints") if (out / "checkpoints").exists() else []
  assert not any(name.startswith(f"ckpt-{bad}.") for name in saved)
  assert bad == 1 or any(name.startswith(f"ckpt-{bad - 1}.") for name in saved)


@pytest.mark.slow
def test_radii_that_cannot_recover_are_said_and_their_quantiles_kept(
  tmp_path, capsys, tiny_digits_flags
):
  with flagsaver.flagsaver(
    **tiny_digits_flags(
      tmp_path / "r",
      method="iaat",
      warmup_epochs=1,
      epochs=2,
      eps="0.3",
      gamma="0.05",
      beta=0.3,
      **SHORT,
    )
  ):
    train.run(["iaat_tf.main"])
  out = capsys.readouterr().out
  assert "note: after the warmup a radius grows by at most beta x gamma = 0.015" in out
  with open(tmp_path / "r" / "history.csv") as f:
    header = f.readline().strip().split(",")
  assert {f"eps_table_q{q}" for q in (10, 25, 50, 75, 90)} <= set(header)
  assert (tmp_path / "r" / "plots" / "eps_over_epochs.png").exists()


@pytest.mark.slow
def test_warmup_as_long_as_the_run_is_said(tmp_path, capsys, tiny_digits_flags):
  with flagsaver.flagsaver(
    **tiny_digits_flags(tmp_path / "w", method="iaat", warmup_epochs=3, epochs=1, **SHORT)
  ):
    train.run(["iaat_tf.main"])
  out = capsys.readouterr().out
  assert "--warmup_epochs=3 >= --epochs=1: every epoch is warmup" in out


def test_the_quick_start_note_says_why_it_is_expected_there():
  """The quick start's warmup radius 0.3 is above what a radius at 0 can
  regrow to in 15 epochs (0.225): its note says that this is expected
  there (0.225 still covers --eval_eps=0.2, what the run is judged at)."""
  import types  # pylint: disable=g-import-not-at-top
  from iaat_tf.runs import training_steps  # pylint: disable=g-import-not-at-top

  def notes(*args):
    with flagsaver.flagsaver():
      FLAGS(
        ["iaat_tf.main", f"--flagfile={os.path.join(REPO, 'flags', 'quickstart.flags')}", *args]
      )
      config = flags_config.config_from_flags(FLAGS)
    lines = []
    info = types.SimpleNamespace(describe=lambda: "digits")
    strategy = types.SimpleNamespace(num_replicas_in_sync=1)
    training_steps._log_start(config, info, strategy, 22, lines.append)  # pylint: disable=protected-access
    return [l for l in lines if "note:" in l]

  (note,) = notes()
  assert "reaches at most 0.225, below the warmup radius --eps=0.3" in note
  assert note.endswith(
    "(expected here: --eps is above the radius the run is judged at, which a radius at 0 "
    "still reaches, --eval_eps=0.2)"
  )
  (judged_above,) = notes("--eval_eps=0.3")  # Not reached: the advice stands alone.
  assert "expected here" not in judged_above and "train longer" in judged_above
