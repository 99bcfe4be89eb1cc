"""AutoAttack (L-inf and L2): each attack breaks an undefended model, and the
sequence is consistent (per example, across seeds). Square alone:
square_test.py."""

import json

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.evaluation import autoattack

SMALL = dict(apgd_iters=20, fab_iters=20, square_queries=300, targets=3, batch_size=64)


@pytest.fixture(scope="module")
def model(digits_mlp):
  """An undefended MLP trained on the first 1,400 digits (conftest.py)."""
  return digits_mlp


def _run(logits_fn, x, y, eps, **kwargs):
  options = autoattack.AutoAttackOptions(**{**SMALL, **kwargs})
  return autoattack.run_autoattack(
    logits_fn, x, y, eps, options=options, index=np.arange(1400, 1400 + len(x))
  )


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.5)])
@pytest.mark.parametrize("attack", autoattack.STANDARD)
def test_each_attack_alone_breaks_an_undefended_model(model, digits, attack, norm, eps):
  x, y = digits[0][1400:1460], digits[1][1400:1460]
  report = _run(lambda z: model(z, training=False), x, y, eps, attacks=(attack,), norm=norm)
  assert report.clean_accuracy > 0.9
  assert report.robust_accuracy <= 1 / 60
  assert report.to_dict(versions=False)["norm"] == {"linf": "Linf", "l2": "L2"}[norm]


@pytest.mark.slow
def test_l2_sequence_is_at_most_every_single_attack(model, digits):
  x, y = digits[0][1400:1448], digits[1][1400:1448]
  fn = lambda z: model(z, training=False)
  full = _run(fn, x, y, 0.8, norm="l2")
  assert 0.0 < full.robust_accuracy < full.clean_accuracy
  after = list(full.accuracy_after.values())
  assert after == sorted(after, reverse=True)
  for name in autoattack.STANDARD:
    single = _run(fn, x, y, 0.8, attacks=(name,), norm="l2")
    assert not np.any(full.robust & ~single.robust), name
    assert full.robust_accuracy <= single.robust_accuracy
  # An L2-sized radius is refused under L-inf (radii there are on [0, 1]).
  with pytest.raises(ValueError, match="eps must be in"):
    _run(fn, x, y, 1.5)


@pytest.fixture(scope="module")
def sequence_and_singles(model, digits):
  x, y = digits[0][1400:1480], digits[1][1400:1480]
  fn = lambda z: model(z, training=False)
  full = _run(fn, x, y, 0.08)
  singles = {a: _run(fn, x, y, 0.08, attacks=(a,)) for a in autoattack.STANDARD}
  other_seed = _run(fn, x, y, 0.08, seed=1)
  small_chunks = _run(fn, x, y, 0.08, batch_size=16)
  return full, singles, other_seed, small_chunks


@pytest.mark.slow
def test_sequence_is_below_clean_and_every_single_attack(sequence_and_singles):
  full, singles, _, _ = sequence_and_singles
  assert 0.0 < full.robust_accuracy < full.clean_accuracy
  assert not np.any(full.robust & ~full.clean_correct)
  after = list(full.accuracy_after.values())
  assert after == sorted(after, reverse=True) and after[-1] == full.robust_accuracy
  for name, single in singles.items():
    # Random starts are keyed per example, so the sequence's survivors are a
    # subset of each attack's survivors when run alone.
    assert not np.any(full.robust & ~single.robust), name
    assert full.robust_accuracy <= single.robust_accuracy
    assert full.robust_after[name].mean() <= single.robust_accuracy


@pytest.mark.slow
def test_another_seed_does_not_raise_accuracy(sequence_and_singles):
  full, _, other_seed, _ = sequence_and_singles
  assert abs(other_seed.robust.sum() - full.robust.sum()) <= 3


@pytest.mark.slow
def test_chunks_of_another_size_give_the_same_per_example_results(sequence_and_singles):
  """Chunks of 64 + 16 examples vs 5 of 16: the same outcome per example."""
  full, _, _, small_chunks = sequence_and_singles
  for name in autoattack.STANDARD:
    np.testing.assert_array_equal(
      full.robust_after[name], small_chunks.robust_after[name], err_msg=name
    )
  assert list(full.broken_by) == list(small_chunks.broken_by)
  assert set(full.broken_by) - {"", "clean"}  # Attacks did break examples.


@pytest.mark.slow
def test_report_json_and_progress(model, digits):
  x, y = digits[0][1400:1430], digits[1][1400:1430]
  dataset = tf.data.Dataset.from_tensor_slices(({"image": x, "index": np.arange(30)}, y)).batch(16)
  lines = []
  report = autoattack.run_autoattack(
    lambda z: model(z, training=False),
    dataset,
    eps=0.05,
    options=autoattack.AutoAttackOptions(**{**SMALL, "batch_size": 16}),
    dataset="digits",
    progress=lambda p: lines.append(p),
  )
  data = json.loads(json.dumps(report.to_dict()))
  assert data["norm"] == "Linf" and data["n_examples"] == 30
  assert data["dataset"] == "digits" and data["eps"] == 0.05
  assert list(data["accuracy_after_attack"]) == list(autoattack.STANDARD)
  assert set(data["seconds_per_attack"]) == set(autoattack.STANDARD)
  assert data["robust_accuracy"] <= data["clean_accuracy"]
  assert "tensorflow" in data["versions"]
  assert {p.attack for p in lines} <= set(autoattack.STANDARD)
  # Chunks of 16 examples stream through the whole sequence in turn.
  assert lines[0].attack == "apgd-ce" and lines[0].chunk == (0, 16)
  assert [p.done for p in lines if p.attack == "square"] == [16, 30]
  assert lines[-1].chunk == (16, 30) and lines[-1].total is None
  assert lines[-1].robust_left == int(report.robust.sum())
  assert "examples 16-30" in lines[-1].line()
  rows = report.example_rows()
  assert [r["index"] for r in rows] == list(range(30))
  assert [r["label"] for r in rows] == list(y)
  for r in rows:
    assert (r["broken_by"] == "") == bool(r["robust"])
    assert (r["broken_by"] == "clean") == (not r["clean_correct"])
    assert r["broken_by"] in ("", "clean", *autoattack.STANDARD)


def test_bad_options_are_refused():
  with pytest.raises(ValueError, match="Unknown AutoAttack"):
    autoattack.AutoAttackOptions(attacks=("pgd",))
  with pytest.raises(ValueError, match="eps"):
    autoattack.run_autoattack(lambda z: z, np.zeros([1, 2, 2, 1]), [0], eps=2.0)


def test_the_options_radius_and_example_count_are_used(model, digits):
  """One options class: run_autoattack takes the radius and the number of
  examples from it (as the commands' --aa_eps and --aa_max_examples), and
  the report's settings record both."""
  x, y = digits[0][1400:1430], digits[1][1400:1430]
  options = autoattack.AutoAttackOptions(
    eps=0.1, max_examples=5, attacks=("apgd-ce",), apgd_iters=2, batch_size=4
  )
  report = autoattack.run_autoattack(lambda z: model(z, training=False), x, y, options=options)
  assert report.num_examples == 5 and report.eps == pytest.approx(0.1)
  assert report.index.tolist() == [0, 1, 2, 3, 4]
  settings = report.to_dict(versions=False)["settings"]
  assert settings["eps"] == pytest.approx(0.1) and settings["max_examples"] == 5
  # The call's radius wins over the options'.
  assert autoattack.run_autoattack(
    lambda z: model(z, training=False), x, y, 0.05, options=options
  ).eps == pytest.approx(0.05)
