"""Every check that needs only the flags and the files they name runs before
TensorFlow is imported or a model loaded, in all four commands.

Each command runs in a child process whose `import tensorflow` fails
(a stub package first on PYTHONPATH): a refusal that still comes, as one
line `PROG: error: ...` with exit 2, happened before TensorFlow. Nothing
here is timed.
"""

import os
import subprocess
import sys
import zipfile

import pytest
from absl import flags
from absl.testing import flagsaver

from iaat_tf import run_io
from iaat_tf.cli import flags_config
from iaat_tf.runs import flagfiles
from tests import child_process

FLAGS = flags.FLAGS
PROGS = {"iaat_tf.main": "iaat_tf", "iaat_tf.evaluate": "iaat_tf.evaluate"}


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory):
  """An environment where `import tensorflow` fails."""
  return child_process.no_tensorflow_env(tmp_path_factory.mktemp("no_tf"))


def _refused(module, args, env, cwd, message):
  result = child_process.run(module, args, env, cwd)
  prog = PROGS.get(module, module)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2, (args, result.stdout, result.stderr)
  assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr
  assert message in lines[0], lines[0]
  return lines[0]


def _trained(run_dir, *args, epochs=None):
  """A finished run's config.json and results.json, as `iaat-train args` writes them."""
  with flagsaver.flagsaver():
    FLAGS(["iaat_tf", *flagfiles.expand([*args, f"--output_dir={run_dir}"])])
    config = flags_config.config_from_flags(FLAGS)
  os.makedirs(run_dir, exist_ok=True)
  run_io.write_json(os.path.join(run_dir, "config.json"), config.to_dict())
  results = {"epochs": epochs or config.train.epochs, "num_test": 359}
  run_io.write_json(os.path.join(run_dir, "results.json"), results)
  return config


def test_train_refuses_a_run_made_with_other_settings_before_tensorflow(no_tensorflow, tmp_path):
  run_dir = str(tmp_path / "run")
  _trained(run_dir, "--flagfile=quickstart")
  for change, named in (
    ("--learning_rate=0.01", "--learning_rate (0.05 there, 0.01 now)"),
    ("--optimizer=adam", "--optimizer (sgd there, adam now)"),
    ("--weight_decay=0", "--weight_decay (0.0005 there, 0 now)"),
    ("--epochs=10", "holds a run that trained 20 epochs, more than --epochs=10"),
  ):
    line = _refused(
      "iaat_tf.main",
      ["--flagfile=quickstart", f"--output_dir={run_dir}", change],
      no_tensorflow,
      tmp_path,
      named,
    )
    assert "--overwrite" in line
  # What changes no number (verbosity, where the data is) finds it finished.
  same = child_process.run(
    "iaat_tf.main",
    ["--flagfile=quickstart", f"--output_dir={run_dir}", "--verbose=0", "--keep_checkpoints=1"],
    no_tensorflow,
    tmp_path,
  )
  assert same.returncode == 0 and "holds a finished run" in same.stdout, same.stderr


def test_train_checks_its_paths_before_tensorflow(no_tensorflow, tmp_path):
  (tmp_path / "a_file").write_text("")
  for args, message in (
    ([f"--output_dir={tmp_path / 'a_file' / 'run'}"], f"{tmp_path / 'a_file'} is a file"),
    ([f"--output_dir={tmp_path / 'a_file'}"], "is a file, not a folder"),
    (
      [f"--output_dir={tmp_path / 'o'}", "--dataset=npz", f"--npz_path={tmp_path / 'x.npz'}"],
      "x.npz does not exist",
    ),
  ):
    _refused("iaat_tf.main", args, no_tensorflow, tmp_path, message)
  assert not (tmp_path / "o").exists()


def _keras_archive(path, config=True):
  """A zip that looks like a .keras file from its listing (never opened here)."""
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("config.json" if config else "other.txt", "{}")
  return str(path)


def test_evaluate_checks_flags_and_files_before_tensorflow(no_tensorflow, tmp_path):
  run_dir = str(tmp_path / "run")
  _trained(run_dir, "--flagfile=quickstart")
  os.makedirs(os.path.join(run_dir, "saved_model"))
  model = _keras_archive(tmp_path / "model.keras")
  cut = tmp_path / "cut.keras"
  cut.write_bytes(open(model, "rb").read()[:30])
  foreign = [f"--keras_model={model}", "--dataset=digits"]
  for args, message in (
    # A foreign model: the radius, the file, the data folder.
    ([*foreign, "--aa_eps=8"], "radius 8.0 is outside [0, 1]"),
    ([f"--keras_model={cut}", "--dataset=digits", "--aa_eps=0.1"], "not a readable .keras file"),
    (
      [f"--keras_model={_keras_archive(tmp_path / 'x.keras', config=False)}", "--dataset=digits"],
      "a zip archive without a Keras model",
    ),
    ([f"--saved_model={tmp_path}", "--dataset=digits"], "a folder without saved_model.pb"),
    ([f"--keras_model={model}", "--dataset=mnist", "--aa_eps=0.1"], "pass --data_dir=DIR"),
    (
      [*foreign[:1], "--dataset=mnist", f"--data_dir={tmp_path / 'tfds'}", "--aa_eps=0.1"],
      "tfds does not exist (pass the directory holding the tfds data)",
    ),
    ([*foreign, "--aa_eps=0.1", "--num_examples=5"], "--num_examples applies only to"),
    # A run: its config.json, its norm, its files, the flags.
    ([f"--run_dir={run_dir}", "--norm=l2"], "--norm=l2 differs from the run's linf"),
    ([f"--run_dir={run_dir}", "--aa_eps=2"], "radius 2.0 is outside [0, 1]"),
    ([f"--run_dir={run_dir}", "--source=checkpoint"], "no checkpoint in"),
    ([f"--run_dir={run_dir}", "--corruptions=fogg"], "unknown CIFAR-10-C corruption(s) ['fogg']"),
    ([f"--run_dir={run_dir}", "--allow_chance"], "--allow_chance applies to --saved_model"),
  ):
    _refused("iaat_tf.evaluate", args, no_tensorflow, tmp_path, message)
  # A run of an .npz file that is gone.
  npz = tmp_path / "data.npz"
  npz.write_bytes(b"")
  npz_run = str(tmp_path / "npz_run")
  _trained(npz_run, "--flagfile=quickstart", "--dataset=npz", f"--npz_path={npz}")
  os.makedirs(os.path.join(npz_run, "saved_model"))
  npz.unlink()
  _refused(
    "iaat_tf.evaluate",
    [f"--run_dir={npz_run}"],
    no_tensorflow,
    tmp_path,
    f"its --npz_path={npz} does not exist",
  )


def test_pareto_names_a_missing_folder(no_tensorflow, tmp_path):
  missing = tmp_path / "nope"
  line = _refused(
    "iaat_tf.pareto",
    [f"--runs={missing}", f"--out_dir={tmp_path / 'o'}"],
    no_tensorflow,
    tmp_path,
    f"--runs: {missing} does not exist",
  )
  assert "results.json" not in line


def test_frontier_checks_every_runs_training_flags_before_any_run(no_tensorflow, tmp_path):
  out = tmp_path / "frontier"
  common = [
    "--experiment=quickstart",
    f"--out_dir={out}",
    "--pgd_at_eps=0.2",
    "--seeds=0",
    "--nouniform_ramp",
  ]
  _trained(
    str(out / "runs" / "pgd_at_eps0.2_seed0"),
    "--flagfile=quickstart",
    "--epochs=4",
    "--method=pgd_at",
    "--eps=0.2",
    "--seed=0",
  )
  line = _refused(
    "iaat_tf.frontier",
    [*common, "--train_args=--epochs=4 --learning_rate=0.01"],
    no_tensorflow,
    tmp_path,
    "holds runs trained with other settings: --learning_rate (0.05 there, 0.01 now)",
  )
  assert "--train_args" in line
  _refused(
    "iaat_tf.frontier",
    [*common, "--iaat=gama=0.1"],
    no_tensorflow,
    tmp_path,
    "the training flags of",
  )
  assert not (out / "logs").exists()  # No run started.


def test_help_names_the_command_as_it_was_run(no_tensorflow, tmp_path):
  from iaat_tf.cli import help_text  # pylint: disable=g-import-not-at-top

  assert help_text.invoked_as("iaat_tf.evaluate", "/venv/bin/iaat-evaluate") == "iaat-evaluate"
  assert help_text.invoked_as("iaat_tf", "/repo/iaat_tf/main.py") == "python -m iaat_tf.main"
  result = child_process.run("iaat_tf.frontier", ["--help"], no_tensorflow, tmp_path)
  assert result.stdout.startswith("usage: python -m iaat_tf.frontier [--flag=value ...]")
  script = os.path.join(os.path.dirname(sys.executable), "iaat-evaluate")
  if not os.path.exists(script):
    pytest.skip("no console scripts (not an installed package)")
  result = subprocess.run(
    [script, "--help"], env=no_tensorflow, capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0 and result.stderr == ""
  assert result.stdout.startswith("usage: iaat-evaluate [--flag=value ...]")
  assert "python -m" not in result.stdout.splitlines()[0]
