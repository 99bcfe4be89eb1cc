"""Resuming a killed mirrored run (2 virtual CPU devices) gives the uninterrupted result.

Like resume_test.py's end-to-end test, with `--strategy=mirrored
--num_virtual_devices=2`: the restored optimizer slots must be built in the
strategy's scope (mirrored, like the ones `fit` creates) and the eps table,
weights, momenta and step must continue exactly. `--shuffle_buffer=1` makes
the example order the same in both processes.
"""

import os
import subprocess

import pytest

from tests import main_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS, TRAIN, BATCH = 4, 192, 64
ARGS = [
  f"--flagfile={os.path.join(REPO, 'flags', 'quickstart.flags')}",
  "--strategy=mirrored",
  "--num_virtual_devices=2",
  "--weight_decay_type=coupled",
  f"--epochs={EPOCHS}",
  "--warmup_epochs=1",
  f"--max_train_examples={TRAIN}",
  f"--batch_size={BATCH}",
  "--pgd_steps=10",
  "--shuffle_buffer=1",
  "--val_examples=64",
  "--max_test_examples=64",
  "--eval_pgd_steps=2",
  "--export=false",
  "--verbose=2",
  "--seed=5",
]
TIMEOUT = 180


def _start(output_dir: str) -> subprocess.Popen:
  return main_process.start(ARGS, output_dir)


def _wait(proc: subprocess.Popen) -> str:
  return main_process.wait(proc, TIMEOUT)


@pytest.mark.slow
def test_killed_mirrored_run_resumes_to_the_uninterrupted_result(tmp_path):
  reference_dir, run_dir = str(tmp_path / "reference"), str(tmp_path / "run")
  reference = _start(reference_dir)
  first = _start(run_dir)
  first_out, killed_at = main_process.kill_after_first_checkpoint(
    first, run_dir, TIMEOUT, settle=0.3
  )
  assert 1 <= killed_at < EPOCHS, first_out[-2000:]

  second_out = _wait(_start(run_dir))
  assert "resumed from" in second_out and "2 replica(s)" in second_out, second_out[-2000:]
  _wait(reference)

  resumed = main_process.assert_resumed_like_uninterrupted(
    run_dir, reference_dir, EPOCHS * (TRAIN // BATCH)
  )
  slots = [k for k in resumed if k.startswith("optimizer/_variables/")]
  assert len(slots) == len([k for k in resumed if k.startswith("optimizer/_trainable")])
