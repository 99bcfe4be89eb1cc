"""runs/frontier_cache.py: a frontier rerun reuses a run's training and its
AutoAttack only when they match the settings asked for now.

Run directories are written by hand (config.json as training writes it,
results.json with an AutoAttack as evaluate writes it): no training here.
"""

import dataclasses
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from iaat_tf import config as cfg
from iaat_tf import run_io
from iaat_tf.cli import flags_config
from iaat_tf.runs import flagfiles, frontier_cache, frontier_config, frontier_jobs, frontier_run
from iaat_tf.runs.evaluation_config import EvaluationConfig, autoattack_options
from iaat_tf.evaluation.settings import AutoAttackOptions

FLAGS = flags.FLAGS
ASKED = AutoAttackOptions(max_examples=64, apgd_iters=3, targets=1, fab_iters=3, square_queries=5)


def _judged(run_dir, asked=ASKED, n=64, num_test=359, **config_kwargs):
  """A finished run whose results.json holds the AutoAttack `asked` makes."""
  run = cfg.Config(
    output_dir=str(run_dir), validation=cfg.ValidationConfig(eps=0.2), **config_kwargs
  )
  options = autoattack_options(EvaluationConfig(autoattack=asked), run)
  os.makedirs(run_dir, exist_ok=True)
  run_io.write_json(os.path.join(run_dir, "config.json"), run.to_dict())
  aa = {"eps": options.eps, "n_examples": n, "settings": options.to_dict()}
  run_io.write_json(os.path.join(run_dir, "results.json"), {"num_test": num_test, "autoattack": aa})
  return str(run_dir)


def test_an_autoattack_is_reused_only_when_every_option_matches(tmp_path):
  run_dir = _judged(tmp_path / "run")
  assert frontier_cache.autoattack_differences(run_dir, ASKED) == []
  for change, words in (
    ({"apgd_iters": 100}, "--aa_apgd_iters (3 there, 100 now)"),
    ({"square_queries": 5000}, "--aa_square_queries (5 there, 5000 now)"),
    ({"targets": 9}, "--aa_targets (1 there, 9 now)"),
    ({"fab_iters": 100}, "--aa_fab_iters (3 there, 100 now)"),
    ({"eps": 0.3}, "--aa_eps (0.2 there, 0.3 now)"),
  ):
    asked = dataclasses.replace(ASKED, **change)
    assert frontier_cache.autoattack_differences(run_dir, asked) == [words], change
  # The batch changes no example's outcome: reused.
  bigger = dataclasses.replace(ASKED, batch_size=500)
  assert frontier_cache.autoattack_differences(run_dir, bigger) == []
  assert frontier_cache.autoattack_differences(str(tmp_path / "none"), ASKED) is None


def test_an_autoattack_on_other_examples_is_not_reused(tmp_path):
  """Fails if the cache ignores the example count."""
  run_dir = _judged(tmp_path / "run")  # 64 of 359 test examples.
  fewer = dataclasses.replace(ASKED, max_examples=32)
  assert frontier_cache.autoattack_differences(run_dir, fewer) == [
    "--aa_max_examples (64 examples there, 32 now)"
  ]
  every = dataclasses.replace(ASKED, max_examples=None)
  assert frontier_cache.autoattack_differences(run_dir, every) == [
    "--aa_max_examples (64 examples there, 359 now)"
  ]
  # A cap above a split it read whole asks for the same examples.
  small = _judged(tmp_path / "small", n=40, num_test=40)
  more = dataclasses.replace(ASKED, max_examples=1000)
  assert frontier_cache.autoattack_differences(small, more) == []


def test_an_autoattack_stored_before_its_settings_held_the_cap(tmp_path):
  """Older results.json: no max_examples or eps in "settings"; the run's
  num_test (it tested on the whole split) says how many examples "all" is."""
  run_dir = _judged(tmp_path / "run", asked=AutoAttackOptions(), n=359)
  path = os.path.join(run_dir, "results.json")
  results = run_io.read_json(path)
  for key in ("max_examples", "eps"):
    del results["autoattack"]["settings"][key]
  run_io.write_json(path, results)
  assert frontier_cache.autoattack_differences(run_dir, AutoAttackOptions()) == []
  capped = AutoAttackOptions(max_examples=64)
  assert frontier_cache.autoattack_differences(run_dir, capped) == [
    "--aa_max_examples (359 examples there, 64 now)"
  ]


def _options(tmp_path, **kwargs):
  return frontier_config.FrontierConfig(
    **{
      "experiment": "quickstart",
      "out_dir": str(tmp_path),
      "pgd_at_eps": (0.2,),
      "seeds": (0,),
      "uniform_ramp": False,
      "curve": False,
      "autoattack": ASKED,
      **kwargs,
    }
  )


def test_a_run_judged_with_other_options_is_attacked_again_and_says_so(tmp_path, monkeypatch):
  options = _options(tmp_path)
  (setting,) = frontier_config.settings_of(options)
  run_dir = setting.run_dir(str(tmp_path), 0)
  _judged(run_dir)
  commands = []
  monkeypatch.setattr(
    frontier_jobs, "_run", lambda command, log_path, env=None: commands.append(command)
  )
  monkeypatch.setattr(frontier_jobs, "read_run", lambda *args: {})
  frontier_jobs.train_and_evaluate(setting, 0, options, "x.flags")
  assert [c[2] for c in commands] == ["iaat_tf.main"]  # Its AutoAttack is reused.
  commands.clear()
  more = dataclasses.replace(ASKED, apgd_iters=5)
  lines = []
  frontier_cache.say_stale([run_dir], more, lines.append)
  assert lines == [
    "frontier: 1 run(s) were judged with other AutoAttack options "
    "(--aa_apgd_iters (3 there, 5 now)): they are attacked again"
  ]
  frontier_jobs.train_and_evaluate(setting, 0, _options(tmp_path, autoattack=more), "x.flags")
  assert [c[2] for c in commands] == ["iaat_tf.main", "iaat_tf.evaluate"]
  assert "--aa_apgd_iters=5" in commands[1] and "--attacks=autoattack" in commands[1]
  log = open(os.path.join(tmp_path, "logs", f"{setting.name}_seed0.log")).read()
  assert "AutoAttack made with --aa_apgd_iters (3 there, 5 now): attacked again" in log


def _train(run_dir, args):
  """config.json as `iaat-train args --output_dir=run_dir` writes it."""
  with flagsaver.flagsaver():
    FLAGS(["iaat_tf", *flagfiles.expand([*args, f"--output_dir={run_dir}"])])
    config = flags_config.config_from_flags(FLAGS)
  os.makedirs(run_dir)
  run_io.write_json(os.path.join(run_dir, "config.json"), config.to_dict())
  run_io.write_json(os.path.join(run_dir, "results.json"), {"epochs": config.train.epochs})


def test_training_flags_are_checked_before_any_run(tmp_path):
  run_dir = str(tmp_path / "runs" / "a_seed0")
  args = ["--flagfile=quickstart", "--epochs=4", "--seed=0"]
  _train(run_dir, args)
  lines = []
  runs = lambda *extra: [(run_dir, [*args, *extra, f"--output_dir={run_dir}"])]
  assert frontier_cache.check_training(runs(), str(tmp_path), lines.append) is None
  assert lines == []
  refusal = frontier_cache.check_training(runs("--learning_rate=0.01"), str(tmp_path))
  assert refusal.startswith(f"--out_dir={tmp_path} holds runs trained with other settings: ")
  assert "--learning_rate (0.05 there, 0.01 now)" in refusal and run_dir in refusal
  # More epochs: the run resumes, and the frontier says so once.
  assert frontier_cache.check_training(runs("--epochs=6"), str(tmp_path), lines.append) is None
  assert lines == [
    "frontier: 1 run(s) resume with --epochs from 4 to 6 (their config.json records it)"
  ]
  bad = frontier_cache.check_training(runs("--gama=0.1"), str(tmp_path))
  assert bad.startswith(f"the training flags of {run_dir}: Unknown command line flag 'gama'")


def test_the_frontier_refuses_other_train_args_in_one_line(tmp_path):
  """Through runs.frontier: refused before any run starts, in one line."""
  options = _options(tmp_path, train_args=("--epochs=4",))
  (setting,) = frontier_config.settings_of(options)
  _train(
    setting.run_dir(str(tmp_path), 0),
    frontier_jobs.train_args(setting, 0, options, "quickstart")[:-1],
  )
  changed = _options(tmp_path, train_args=("--epochs=4", "--optimizer=adam"))
  with pytest.raises(frontier_config.FrontierError, match=r"--optimizer \(sgd there, adam now\)"):
    frontier_run.frontier(changed, log=lambda _: None)


def test_under_ray_the_data_paths_are_left_to_the_workers(tmp_path):
  """The driver may not hold the data the workers read (--executor=ray)."""
  run_dir = str(tmp_path / "runs" / "a_seed0")
  args = ["--flagfile=quickstart", "--dataset=cifar10", f"--data_dir={tmp_path / 'tfds'}"]
  runs = [(run_dir, [*args, f"--output_dir={run_dir}"])]
  refusal = frontier_cache.check_training(runs, str(tmp_path))
  assert "tfds does not exist" in refusal
  assert frontier_cache.check_training(runs, str(tmp_path), data=False) is None
