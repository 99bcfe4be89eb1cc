"""iaat_tf.run_io: atomic 0644 writes, results.json updates, history.csv, run state."""

import dataclasses
import json
import os
import stat

import pytest

from iaat_tf import config as cfg
from iaat_tf import run_io


def _mode(path):
  return stat.S_IMODE(os.stat(path).st_mode)


def _expected_mode():
  mask = os.umask(0)
  os.umask(mask)
  return 0o666 & ~mask


def test_atomic_writes_have_the_normal_mode_and_leave_no_temp_files(tmp_path):
  paths = [
    run_io.write_json(str(tmp_path / "a.json"), {"b": 1, "a": [1.5]}),
    run_io.atomic_write_bytes(str(tmp_path / "sub" / "b.png"), b"\x89PNG"),
    run_io.write_csv(str(tmp_path / "c.csv"), ["x", "y"], [{"x": 1}]),
  ]
  for path in paths:
    assert _mode(path) == _expected_mode()  # 0644 under the usual umask 022.
  assert sorted(os.listdir(tmp_path)) == ["a.json", "c.csv", "sub"]
  assert json.load(open(paths[0])) == {"a": [1.5], "b": 1}
  assert open(paths[2]).read() == "x,y\n1,\n"


def test_read_json_errors_are_one_line(tmp_path):
  with pytest.raises(run_io.RunDirError, match="does not exist"):
    run_io.read_json(str(tmp_path / "none.json"))
  (tmp_path / "bad.json").write_text("{nope")
  with pytest.raises(run_io.RunDirError, match="malformed") as e:
    run_io.read_json(str(tmp_path / "bad.json"))
  assert "\n" not in str(e.value)


def test_update_results_keeps_other_keys(tmp_path):
  assert run_io.update_results(str(tmp_path), robustness={}) is None
  run_io.write_json(
    str(tmp_path / "results.json"), {"history": {"loss": [1.0, 0.5]}, "autoattack": {"x": 1}}
  )
  run_io.update_results(str(tmp_path), robustness={"curve": []})
  results = run_io.read_results(str(tmp_path))
  assert results == {
    "history": {"loss": [1.0, 0.5]},
    "autoattack": {"x": 1},
    "robustness": {"curve": []},
  }


def test_history_rows_and_columns(tmp_path):
  path = str(tmp_path / "history.csv")
  run_io.write_csv(
    path,
    ["epoch", "loss", "val_pgd_acc"],
    [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "val_pgd_acc": 0.5}],
  )
  rows = run_io.read_history(path)
  assert rows == [{"epoch": 1.0, "loss": 2.0}, {"epoch": 2.0, "loss": 1.0, "val_pgd_acc": 0.5}]
  columns = run_io.history_columns(rows)
  assert columns == {"epoch": [1, 2], "loss": [2.0, 1.0], "val_pgd_acc": [None, 0.5]}
  assert run_io.read_history(str(tmp_path / "none.csv")) == []


def test_check_run_dir(tmp_path):
  with pytest.raises(run_io.RunDirError, match="does not exist"):
    run_io.check_run_dir(str(tmp_path / "x"))
  with pytest.raises(run_io.RunDirError, match="no config.json"):
    run_io.check_run_dir(str(tmp_path))


def test_finished_and_resume_checks(tmp_path):
  config = cfg.Config(output_dir=str(tmp_path), train=cfg.TrainConfig(epochs=3))
  assert run_io.finished_results(config) is None
  run_io.check_resume_compatible(config)  # Empty directory: fine.
  run_io.write_json(str(tmp_path / "config.json"), config.to_dict())
  run_io.check_resume_compatible(config)
  run_io.write_json(str(tmp_path / "results.json"), {"epochs": 2})
  assert run_io.finished_results(config) is None  # Asked for more epochs.
  run_io.write_json(str(tmp_path / "results.json"), {"epochs": 3})
  assert run_io.finished_results(config) == {"epochs": 3}
  assert "--overwrite" in run_io.finished_message(config, {"epochs": 3})
  other = cfg.Config(
    output_dir=str(tmp_path), method=cfg.MethodConfig(method="pgd_at"), train=config.train
  )
  with pytest.raises(cfg.ConfigError, match=r"other settings: --method \(iaat there, pgd_at now\)"):
    run_io.check_resume_compatible(other)


def test_a_run_saved_before_a_setting_existed_resumes(tmp_path):
  """Settings missing from an older config.json read as their defaults."""
  config = cfg.Config(output_dir=str(tmp_path))
  saved = json.loads(json.dumps(config.to_dict()))
  del saved["data"]["augment_pad"], saved["method"]["s_minus"]
  run_io.write_json(str(tmp_path / "config.json"), saved)
  run_io.check_resume_compatible(config)  # The defaults: the old behaviour.
  changed = cfg.Config(output_dir=str(tmp_path), method=cfg.MethodConfig(s_minus="adversarial"))
  with pytest.raises(cfg.ConfigError, match=r"--s_minus \(clean there, adversarial now\)"):
    run_io.check_resume_compatible(changed)


def _saved_run(path, epochs=3, trained=None, **sections) -> cfg.Config:
  """A run directory's config.json (and results.json when `trained` epochs finished)."""
  config = cfg.Config(output_dir=str(path), train=cfg.TrainConfig(epochs=epochs), **sections)
  run_io.write_json(str(path / "config.json"), config.to_dict())
  if trained:
    run_io.write_json(str(path / "results.json"), {"epochs": trained})
  return config


@pytest.mark.parametrize(
  "section,change,flag",
  [
    ("train", {"learning_rate": 0.01}, "--learning_rate (0.1 there, 0.01 now)"),
    ("train", {"optimizer": "adam"}, "--optimizer (sgd there, adam now)"),
    ("train", {"weight_decay": 0.0}, "--weight_decay (0.0005 there, 0 now)"),
    ("train", {"lr_schedule": "cosine"}, "--lr_schedule (step there, cosine now)"),
    ("train", {"precision": "mixed_bfloat16"}, "--precision"),
    ("attack", {"steps": 3}, "--pgd_steps (10 there, 3 now)"),
    ("validation", {"eps": 0.1}, "--eval_eps"),
    ("data", {"batch_size": 64}, "--batch_size (128 there, 64 now)"),
    ("model", {"width": 2}, "--wrn_width (10 there, 2 now)"),
  ],
)
def test_a_changed_setting_is_refused_by_name_on_a_finished_or_unfinished_run(
  tmp_path, section, change, flag
):
  for trained in (3, None):  # Finished, then unfinished.
    saved = _saved_run(tmp_path, trained=trained)
    changed = dataclasses.replace(
      saved, **{section: dataclasses.replace(getattr(saved, section), **change)}
    )
    with pytest.raises(run_io.SettingsDiffer) as refused:
      run_io.check_resume_compatible(changed)
    assert flag in str(refused.value) and "\n" not in str(refused.value)
    assert [d for d in refused.value.differences if flag in d]


def test_settings_that_change_no_result_are_not_refused(tmp_path):
  saved = _saved_run(tmp_path, trained=3)
  same_result = dataclasses.replace(
    saved,
    export=False,
    data=dataclasses.replace(saved.data, data_dir="/elsewhere", download=True),
    train=dataclasses.replace(
      saved.train, verbose=0, keep_checkpoints=1, gpu_memory_growth=False, steps_per_execution=4
    ),
  )
  assert run_io.check_resume_compatible(same_result) == []
  assert run_io.finished_results(same_result) == {"epochs": 3}
  # The seed changes the result: --seed, named once (data.seed follows it).
  with pytest.raises(run_io.SettingsDiffer) as refused:
    run_io.check_resume_compatible(dataclasses.replace(saved, seed=1))
  assert refused.value.differences == ["--seed (0 there, 1 now)"]


def test_more_epochs_resume_and_config_json_records_the_change(tmp_path):
  saved = _saved_run(tmp_path, epochs=3, trained=3)
  longer = dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=5))
  changes = run_io.check_resume_compatible(longer)
  assert changes == [{"setting": "--epochs", "was": 3, "now": 5}]
  assert run_io.finished_results(longer) is None  # It resumes.
  record = run_io.config_record(longer, changes, {"iaat_tf": "x"})
  assert record["train"]["epochs"] == 5 and record["provenance"] == {"iaat_tf": "x"}
  assert record["changes"] == [{"setting": "--epochs", "was": 3, "now": 5, "at_epoch": 3}]
  # The history is kept across resumes: a later change is appended.
  run_io.write_json(str(tmp_path / "config.json"), record)
  (tmp_path / "results.json").unlink()
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "checkpoints" / "ckpt-4.index").write_text("")
  again = dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=6))
  changes = run_io.check_resume_compatible(again)
  assert [c["at_epoch"] for c in run_io.config_record(again, changes, {})["changes"]] == [3, 4]
  # Fewer epochs than trained cannot be honoured.
  fewer = dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=2))
  with pytest.raises(run_io.SettingsDiffer, match="trained 4 epochs, more than --epochs=2"):
    run_io.check_resume_compatible(fewer)


def test_run_io_imports_no_tensorflow():
  import subprocess
  import sys  # pylint: disable=g-import-not-at-top,multiple-imports

  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  code = (
    "import sys; import iaat_tf.run_io, iaat_tf.cli.app, iaat_tf.pareto; "
    "print('tensorflow' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60, check=True
  )
  assert out.stdout.strip() == "False"
