"""Robustness evaluation of a trained classifier (any `logits_fn`).

* `robustness`: clean, PGD and APGD accuracy at several radii, the
  per-example worst case, and the gradient-masking report.
* `autoattack`: AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square).
* `settings`: `AutoAttackConfig`, the commands' AutoAttack options (no TensorFlow).

Uses `iaat_tf.attacks` only; knows nothing of training.
"""
