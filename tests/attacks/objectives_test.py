"""attacks/objectives.py: the DLR and margin losses against their formulas."""

import numpy as np
import pytest
import tensorflow as tf

from iaat_tf.attacks import objectives


def test_dlr_loss_matches_the_formula_and_is_scale_and_shift_invariant():
  logits = tf.constant(
    [
      [3.0, 1.0, 0.0, -1.0],  # correct (y=0)
      [3.0, 1.0, 0.0, -1.0],
    ]
  )  # wrong (y=2)
  labels = tf.constant([0, 2])
  got = objectives.dlr_loss(logits, labels).numpy()
  want = [-(3.0 - 1.0) / (3.0 - 0.0), -(0.0 - 3.0) / (3.0 - 0.0)]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert got[0] < 0 < got[1]  # Positive exactly when misclassified.
  np.testing.assert_allclose(objectives.dlr_loss(5.0 * logits - 7.0, labels), got, rtol=1e-5)
  with pytest.raises(ValueError, match="3 classes"):
    objectives.dlr_loss(tf.zeros([2, 2]), labels)


def test_margin_loss_sign_matches_misclassification():
  logits = tf.constant([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
  labels = tf.constant([0, 0])
  margin = objectives.margin_loss(logits, labels).numpy()
  assert margin[0] < 0 < margin[1]
  np.testing.assert_allclose(margin, [-2.0, 2.0])
