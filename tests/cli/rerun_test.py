"""A rerun of `iaat-train` on its own --output_dir: more --epochs resume and
config.json records the change; any other changed setting is refused, naming it."""

import json

import pytest
from absl.testing import flagsaver

from iaat_tf.cli import train


@pytest.mark.slow
def test_more_epochs_resume_and_are_recorded_other_changes_are_refused(
  tmp_path, capsys, tiny_digits_flags
):
  flags = tiny_digits_flags(
    tmp_path / "run",
    method="iaat",
    eps="0.2",
    warmup_epochs=1,
    gamma="0.05",
    max_train_examples=128,
    pgd_steps=1,
    eval_pgd_steps=1,
  )
  with flagsaver.flagsaver(epochs=1, **flags):
    train.run(["iaat_tf.main"])
  with flagsaver.flagsaver(epochs=2, **flags):
    train.run(["iaat_tf.main"])
  said = capsys.readouterr().out
  assert "--epochs changed from 1 to 2; config.json records it" in said
  assert "resumed from" in said
  with open(tmp_path / "run" / "config.json") as f:
    saved = json.load(f)
  assert saved["train"]["epochs"] == 2
  assert saved["changes"] == [{"setting": "--epochs", "was": 1, "now": 2, "at_epoch": 1}]
  with open(tmp_path / "run" / "results.json") as f:
    results = json.load(f)
  assert results["epochs"] == 2 and results["resumed_from_epoch"] == 1
  # Another learning rate is refused, by name, and nothing is touched.
  with flagsaver.flagsaver(epochs=2, learning_rate=0.01, **flags):
    with pytest.raises(SystemExit) as refused:
      train.run(["iaat_tf.main"])
  assert refused.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--learning_rate (0.1 there, 0.01 now)" in err[0]
  with open(tmp_path / "run" / "config.json") as f:
    assert json.load(f) == saved
