"""The radius rules (radius.py) on hand-made tensors: no model, no attack."""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.training import radius

STORED = tf.constant([0.10, 0.10, 0.10, 0.10, 0.49, 0.01])
CLEAN_OK = tf.constant([True, True, True, False, True, True])


def test_warmup_gives_eps_w_to_clean_correct_examples_only():
  np.testing.assert_allclose(radius.warmup(0.3, CLEAN_OK).numpy(), [0.3, 0.3, 0.3, 0.0, 0.3, 0.3])


def test_algorithm2_choice_up_then_same_then_down():
  up = tf.constant([True, False, False, True, True, False])
  same = tf.constant([True, True, False, False, True, False])
  got = radius.algorithm2_choice(STORED, up, same, gamma=0.02).numpy()
  np.testing.assert_allclose(got, [0.12, 0.10, 0.08, 0.12, 0.51, -0.01], atol=1e-7)


def test_algorithm2_update_zeroes_smooths_and_clips():
  up = tf.constant([True, False, False, True, True, False])
  same = tf.constant([True, True, False, False, True, False])
  got = radius.algorithm2_update(
    STORED, up, same, CLEAN_OK, gamma=0.02, beta=0.1, eps_max=0.5
  ).numpy()
  # new = max(choice * clean_ok, 0); eps = 0.1 * new + 0.9 * old; clip.
  expected = [0.1 * 0.12 + 0.09, 0.1, 0.1 * 0.08 + 0.09, 0.09, 0.1 * 0.51 + 0.9 * 0.49, 0.9 * 0.01]
  np.testing.assert_allclose(got, expected, atol=1e-7)


def test_cheap_update_is_plus_minus_gamma_without_smoothing():
  failed = tf.constant([True, False, True, True, True, False])
  got = radius.cheap_update(STORED, failed, CLEAN_OK, gamma=0.02, eps_max=0.5).numpy()
  np.testing.assert_allclose(got, [0.12, 0.08, 0.12, 0.0, 0.5, 0.0], atol=1e-7)


def test_cheap_update_with_smoothing_moves_by_beta_gamma():
  failed = tf.constant([True, False, True, True, True, False])
  got = radius.cheap_update(STORED, failed, CLEAN_OK, gamma=0.02, eps_max=0.5, beta=0.5).numpy()
  np.testing.assert_allclose(got, [0.11, 0.09, 0.11, 0.05, 0.5, 0.005], atol=1e-7)


def test_smooth_weighs_the_new_radius_by_beta():
  got = radius.smooth(tf.constant([1.0]), tf.constant([0.0]), beta=0.1).numpy()
  np.testing.assert_allclose(got, [0.9])


def test_clip_bounds_to_zero_and_eps_max():
  got = radius.clip(tf.constant([-0.1, 0.2, 0.7]), 0.5).numpy()
  np.testing.assert_allclose(got, [0.0, 0.2, 0.5])


def test_recovery_note_when_radii_at_zero_cannot_grow_back():
  # The held-out digit task of issue 26: 7 epochs after the warmup at
  # beta x gamma = 0.015 reach 0.105, far below the warmup radius 0.3.
  note = radius.recovery_note("iaat", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=3, epochs=10)
  assert "0.015 per epoch" in note and "0.105" in note and "--eps=0.3" in note
  assert "\n" not in note
  # The authors' CIFAR schedule has room: 100 x 0.1 x 1.9/255 > 8/255.
  assert (
    radius.recovery_note(
      "iaat", eps=8 / 255, gamma=1.9 / 255, beta=0.1, warmup_epochs=10, epochs=110
    )
    is None
  )
  # The cheap rule moves by gamma, unsmoothed (unless cheap_beta).
  assert (
    radius.recovery_note("iaat_cheap", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=3, epochs=10)
    is None
  )
  assert "0.025 per epoch" in radius.recovery_note(
    "iaat_cheap", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=3, epochs=10, cheap_beta=0.5
  )
  # Nothing to say when no epoch adapts, or for uniform radii.
  assert (
    radius.recovery_note("iaat", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=10, epochs=10) is None
  )
  assert (
    radius.recovery_note("pgd_at", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=3, epochs=10)
    is None
  )


def test_growth_per_epoch_per_rule():
  assert radius.growth_per_epoch("iaat", gamma=0.05, beta=0.3) == pytest.approx(0.015)
  # The cheap rule: gamma a step, unsmoothed unless cheap_beta > 0.
  assert radius.growth_per_epoch("iaat_cheap", gamma=0.05, beta=0.3) == 0.05
  assert radius.growth_per_epoch(
    "iaat_cheap", gamma=0.05, beta=0.3, cheap_beta=0.5
  ) == pytest.approx(0.025)
  assert radius.growth_per_epoch("pgd_at", gamma=0.05, beta=0.3) == 0.0
  assert radius.growth_per_epoch("standard", gamma=0.05, beta=0.3) == 0.0


def test_recovery_note_names_the_rule_and_its_edges():
  iaat = radius.recovery_note("iaat", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=3, epochs=10)
  assert "at most beta x gamma = 0.015 per epoch" in iaat
  assert "in the 7 epochs left" in iaat
  cheap = radius.recovery_note(
    "iaat_cheap", eps=0.3, gamma=0.01, beta=0.3, warmup_epochs=3, epochs=10
  )
  assert "at most gamma = 0.01 per epoch" in cheap and "reaches at most 0.07" in cheap
  # One adaptive epoch is enough to say it.
  assert "in the 1 epochs left" in radius.recovery_note(
    "iaat", eps=0.3, gamma=0.05, beta=0.3, warmup_epochs=9, epochs=10
  )
  # Exactly enough room (8 x 0.5 x 0.0625 = 0.25 = eps): no note.
  assert (
    radius.recovery_note("iaat", eps=0.25, gamma=0.0625, beta=0.5, warmup_epochs=2, epochs=10)
    is None
  )


def test_ramp_factor_edges():
  assert float(radius.ramp_factor(0, 0)) == 1.0  # No ramp, even at step 0.
  assert radius.ramp_factor(3, 0).dtype == tf.float32
  np.testing.assert_allclose([float(radius.ramp_factor(s, 1)) for s in range(3)], [0.0, 1.0, 1.0])
  np.testing.assert_allclose([float(radius.ramp_factor(s, 4)) for s in (2, 4, 40)], [0.5, 1.0, 1.0])
