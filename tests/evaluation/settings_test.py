"""evaluation/settings.py: one AutoAttack options class for the library and every
command; its fingerprint names what a result depends on; no TensorFlow."""

import os
import subprocess
import sys

import pytest

from iaat_tf.evaluation import autoattack, settings
from iaat_tf.evaluation.settings import AutoAttackOptions
from iaat_tf.options import ConfigError, options_of

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_one_class_serves_the_library_and_the_commands():
  from iaat_tf.runs import evaluation_config, frontier_config  # pylint: disable=g-import-not-at-top

  assert autoattack.AutoAttackOptions is AutoAttackOptions
  assert isinstance(evaluation_config.EvaluationConfig().autoattack, AutoAttackOptions)
  assert isinstance(frontier_config.FrontierConfig().autoattack, AutoAttackOptions)
  flags = sorted(name for _, name in options_of(AutoAttackOptions))
  assert flags == [
    "aa_apgd_iters",
    "aa_batch_size",
    "aa_eps",
    "aa_fab_iters",
    "aa_max_examples",
    "aa_square_queries",
    "aa_targets",
  ]
  # AutoAttack's "standard" counts, written once.
  standard = AutoAttackOptions()
  assert (standard.apgd_iters, standard.targets, standard.fab_iters) == (100, 9, 100)
  assert standard.square_queries == 5000 and standard.attacks == settings.STANDARD


def test_bad_options_are_one_line_errors():
  for kwargs, message in (
    ({"attacks": ("pgd",)}, "Unknown AutoAttack"),
    ({"apgd_iters": 0}, "--aa_apgd_iters=0 must be >= 1"),
    ({"norm": "l1"}, "unknown norm 'l1'"),
    ({"square_p_init": 0.0}, "square_p_init must be in"),
  ):
    with pytest.raises(ConfigError, match=message):
      AutoAttackOptions(**kwargs)


def test_the_fingerprint_names_every_option_a_result_depends_on():
  base = AutoAttackOptions(eps=0.1, apgd_iters=3, targets=1, fab_iters=3, square_queries=5)
  stored = base.to_dict()
  assert base.differences(stored) == []
  # The batch and the cap on examples read change no example's outcome.
  assert "batch_size" not in base.fingerprint() and "max_examples" not in base.fingerprint()
  assert base.differences({**stored, "batch_size": 7, "max_examples": 9}) == []
  for change, words in (
    ({"apgd_iters": 100}, "--aa_apgd_iters (3 there, 100 now)"),
    ({"square_queries": 50}, "--aa_square_queries (5 there, 50 now)"),
    ({"targets": 9}, "--aa_targets (1 there, 9 now)"),
    ({"fab_iters": 7}, "--aa_fab_iters (3 there, 7 now)"),
    ({"eps": 0.2}, "--aa_eps (0.1 there, 0.2 now)"),
    ({"norm": "l2"}, "norm (linf there, l2 now)"),
    ({"seed": 3}, "seed (0 there, 3 now)"),
    ({"attacks": ("apgd-ce",)}, "attacks (apgd-ce,apgd-t,fab-t,square there, apgd-ce now)"),
  ):
    now = AutoAttackOptions(**{**stored, **change})
    assert now.differences(stored) == [words], change
  # A radius equal up to JSON's rounding is the same radius; a missing option differs.
  assert base.differences({**stored, "eps": 0.1 + 1e-12}) == []
  assert base.differences({k: v for k, v in stored.items() if k != "fab_iters"}) == [
    "--aa_fab_iters ((none) there, 3 now)"
  ]


def test_settings_import_no_tensorflow():
  code = (
    "import sys; import iaat_tf.evaluation.settings, iaat_tf.evaluation.model_files, "
    "iaat_tf.runs.evaluation_config, iaat_tf.runs.frontier_cache; "
    "print('tensorflow' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
  )
  assert out.stdout.strip() == "False"
