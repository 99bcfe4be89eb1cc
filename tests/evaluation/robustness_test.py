"""Robustness curves: exact worst case, monotone curves, reports, masking checks."""

import json

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.evaluation import masking, robustness

EPS = [0.0, 0.02, 0.05, 0.1, 0.3]
ATTACKS = ("pgd_ce", "pgd_margin", "apgd_ce", "apgd_dlr")


@pytest.fixture(scope="module")
def logits_fn(digits_mlp):
  """The digits MLP of conftest.py, in inference mode."""
  return lambda z: digits_mlp(z, training=False)


def _keyed_dataset(digits, n=300, batch=128):
  x, y = digits
  index = np.arange(1400, 1400 + n, dtype=np.int64)
  return tf.data.Dataset.from_tensor_slices(
    ({"image": x[1400 : 1400 + n], "index": index}, y[1400 : 1400 + n])
  ).batch(batch)


@pytest.fixture(scope="module")
def report(logits_fn, digits):
  calls = []
  result = robustness.evaluate_robustness(
    logits_fn,
    _keyed_dataset(digits),
    EPS,
    pgd_steps=10,
    apgd_iters=15,
    progress=lambda done, total: calls.append((done, total)),
  )
  result.progress_calls = calls  # For the progress test.
  return result


@pytest.mark.slow
def test_report_shape_progress_and_json(report):
  assert report.num_examples == 300
  assert report.progress_calls == [(1, 3), (2, 3), (3, 3)]
  np.testing.assert_array_equal(report.index, np.arange(1400, 1700))
  as_dict = json.loads(json.dumps(report.to_dict()))
  assert set(as_dict) == {"norm", "clean_accuracy", "num_examples", "curve"}
  assert as_dict["norm"] == "linf"
  assert [p["eps"] for p in as_dict["curve"]] == EPS
  for point in as_dict["curve"]:
    assert set(point) == {"eps", *ATTACKS, "worst_case"}
  assert 0.8 < report.clean_accuracy <= 1.0


@pytest.mark.slow
def test_no_attack_beats_clean_and_the_worst_case_is_exact(report):
  clean = report.clean_correct
  assert report.clean_accuracy == pytest.approx(clean.mean())
  for point in report.curve:
    worst = clean.copy()
    for name in ATTACKS:
      mask = point.correct[name]
      assert not np.any(mask & ~clean)  # Clean mistakes never count.
      assert point.accuracies[name] <= report.clean_accuracy
      assert point.worst_case <= point.accuracies[name]
      worst &= mask
    np.testing.assert_array_equal(point.correct["worst_case"], worst)
    assert point.worst_case == pytest.approx(worst.mean())
  assert report.curve[0].worst_case == report.clean_accuracy  # eps = 0.


@pytest.mark.slow
def test_curves_are_monotone_and_a_huge_ball_breaks_the_model(report):
  one_example = 1.0 / report.num_examples
  worst = [p.worst_case for p in report.curve]
  assert all(b <= a for a, b in zip(worst, worst[1:]))
  for name in ATTACKS:
    acc = [p.accuracies[name] for p in report.curve]
    assert all(b <= a + one_example for a, b in zip(acc, acc[1:])), name
  assert report.curve[-1].worst_case <= 0.02  # eps = 0.3
  assert report.curve[-2].worst_case < report.clean_accuracy - 0.2  # eps = 0.1
  assert masking.gradient_masking_report(report) == []


def test_plain_images_max_batches_and_restarts(logits_fn, digits):
  x, y = digits
  ds = tf.data.Dataset.from_tensor_slices((x[1400:], y[1400:])).batch(64)
  kwargs = dict(pgd_steps=5, losses=("margin",), apgd=False, max_batches=2)
  calls = []
  one = robustness.evaluate_robustness(
    logits_fn,
    ds,
    [0.05, 0.1],
    restarts=1,
    progress=lambda done, total: calls.append((done, total)),
    **kwargs,
  )
  two = robustness.evaluate_robustness(logits_fn, ds, [0.05, 0.1], restarts=2, **kwargs)
  assert calls == [(1, 2), (2, 2)]
  assert one.num_examples == 128
  np.testing.assert_array_equal(one.index, np.arange(128))  # Stream position.
  assert set(one.to_dict()["curve"][0]) == {"eps", "pgd_margin", "worst_case"}
  for p1, p2 in zip(one.curve, two.curve):
    # Restart 0 is the same run, so a second restart can only break more.
    assert not np.any(p2.correct["pgd_margin"] & ~p1.correct["pgd_margin"])


def test_bad_arguments_raise(logits_fn, digits):
  ds = _keyed_dataset(digits, n=8)
  with pytest.raises(ValueError, match="loss"):
    robustness.evaluate_robustness(logits_fn, ds, [0.1], losses=("l2",))
  with pytest.raises(ValueError, match="eps"):
    robustness.evaluate_robustness(logits_fn, ds, [-0.1])


def _synthetic(curve, clean=0.9, n=1000):
  names = ("pgd_ce", "pgd_margin", "apgd_ce", "apgd_dlr", "worst_case")
  return {
    "clean_accuracy": clean,
    "num_examples": n,
    "curve": [{"eps": eps, **dict(zip(names, accs))} for eps, accs in curve],
  }


GOOD = [(0.0, [0.9] * 5), (0.1, [0.50, 0.48, 0.47, 0.46, 0.40]), (0.3, [0.01, 0.01, 0.0, 0.0, 0.0])]


def test_masking_report_is_empty_for_a_healthy_report():
  assert masking.gradient_masking_report(_synthetic(GOOD)) == []
  # A rise of one example (1/1000) is within the tolerance.
  wiggle = [GOOD[0], (0.05, [0.6] * 5), (0.1, [0.601] * 5)]
  assert masking.gradient_masking_report(_synthetic(wiggle)) == []


@pytest.mark.parametrize(
  "curve,needle",
  [
    ([(0.0, [0.95, 0.9, 0.9, 0.9, 0.9])], "above the clean accuracy"),
    ([GOOD[0], (0.05, [0.3] * 5), (0.1, [0.35] * 5)], "rises with eps"),
    ([GOOD[0], (0.1, [0.40, 0.40, 0.45, 0.44, 0.38])], "weaker than PGD"),
    ([GOOD[0], (0.3, [0.3, 0.3, 0.3, 0.3, 0.25])], "not near 0"),
  ],
)
def test_masking_report_flags_each_sign(curve, needle):
  warnings = masking.gradient_masking_report(_synthetic(curve))
  assert any(needle in w for w in warnings), warnings
