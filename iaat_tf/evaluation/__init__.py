"""Robustness evaluation of a trained classifier (any `logits_fn`).

* `robustness`: clean, PGD and APGD accuracy at several radii, and the
  per-example worst case.
* `masking`: the signs of gradient masking in a robustness or AutoAttack report.
* `autoattack`: AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square).
* `settings`: `AutoAttackOptions`, AutoAttack's options for the library and
  every command (no TensorFlow).

Uses `iaat_tf.attacks` only; knows nothing of training.
"""
