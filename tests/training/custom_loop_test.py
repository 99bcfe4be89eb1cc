"""docs/python_api.md's custom training loop reproduces `fit`'s eps table and weights.

Same data, initial weights, batch order and seed; 3 epochs, the first one
warmup, so both the warmup and the adaptive radius rules are compared; every
method (and reuse), both S- rules and both BatchNorm modes of the attack
(the classifier has BatchNorm), and TRADES and MART.
"""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import iaat_tf
from iaat_tf.config import alg2_preset
from tests import readme_snippets

HEADING = "## Custom training loops"
PAGE = os.path.join(readme_snippets.REPO, "docs", "python_api.md")
N, BATCH, EPOCHS = 192, 32, 3
METHOD = dict(eps=0.1, warmup_epochs=1, gamma=0.03, beta=0.5, eps_max=0.3)
ATTACK = iaat_tf.AttackConfig(steps=3, step_ratio=0.25, min_step=0.01)
# The classifier (tiny_classifier, tests/conftest.py): Conv2D(8, 3), BatchNorm,
# ReLU, then Dense(10) with an L2 penalty (the loss adds classifier.losses).
CLASSIFIER = dict(shape=(8, 8, 1), classes=10, hidden=0, conv=8, l2=1e-3)


def _keyed_digits():
  digits = load_digits()
  x = (digits.images[:N, ..., None] / 16).astype(np.float32)
  return iaat_tf.with_example_ids(tf.data.Dataset.from_tensor_slices((x, digits.target[:N])))


def _batches_of_epoch(keyed):
  return lambda epoch: keyed.shuffle(N, seed=epoch, reshuffle_each_iteration=False).batch(
    BATCH, drop_remainder=True
  )


def _optimizer():
  return keras.optimizers.SGD(0.05, momentum=0.9)


MODES = (
  [
    (name, s_minus, bn, "ce")
    for name in ("iaat", "iaat_cheap", "iaat_reuse")
    for s_minus in ("clean", "adversarial")
    for bn in ("inference", "train")
  ]
  + [("pgd_at", "clean", bn, "ce") for bn in ("inference", "train")]
  + [
    ("iaat_cheap_train_forward", "clean", "train", "ce"),
    ("standard", "clean", "inference", "ce"),
    ("iaat", "clean", "train", "trades"),
    ("iaat_cheap", "adversarial", "inference", "mart"),
  ]
)


@pytest.mark.slow
@pytest.mark.parametrize("name,s_minus,bn_mode,loss", MODES)
def test_readme_loop_matches_fit(name, s_minus, bn_mode, loss, tiny_classifier):
  attack = dataclasses.replace(ATTACK, bn_mode=bn_mode)
  extra = dict(METHOD, s_minus=s_minus, loss=loss)
  if name == "iaat_reuse":  # Algorithm 2 from the training attack.
    method = iaat_tf.MethodConfig(
      method="iaat", **extra, **alg2_preset("reuse", ATTACK.steps, ATTACK.ratio)
    )
  elif name == "iaat_cheap_train_forward":
    method = iaat_tf.MethodConfig(method="iaat_cheap", **extra, cheap_signal="train_forward")
  else:
    method = iaat_tf.MethodConfig(method=name, **extra)
  batches_of_epoch = _batches_of_epoch(_keyed_digits())

  fit_classifier = tiny_classifier(**CLASSIFIER)
  trainer = iaat_tf.AdversarialTrainer(fit_classifier, N, method, attack)
  trainer.compile(optimizer=_optimizer(), jit_compile=False)
  all_epochs = batches_of_epoch(0)
  for epoch in range(1, EPOCHS):
    all_epochs = all_epochs.concatenate(batches_of_epoch(epoch))
  trainer.fit(all_epochs, epochs=EPOCHS, steps_per_epoch=N // BATCH, verbose=0)

  loop = readme_snippets.run_block(HEADING, path=PAGE)
  loop_classifier = tiny_classifier(**CLASSIFIER)
  table = loop["train"](loop_classifier, _optimizer(), batches_of_epoch, N, method, attack, EPOCHS)

  fit_table = trainer.eps_table.numpy()
  np.testing.assert_allclose(table.numpy(), fit_table, atol=1e-6)
  for a, b in zip(loop_classifier.weights, fit_classifier.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
  if name in ("pgd_at", "standard"):
    assert not fit_table.any()  # No table for uniform radii.
  else:
    # The adaptive epochs moved radii away from the warmup's {0, eps}.
    assert not np.all(np.isin(np.round(fit_table, 6), [0.0, 0.1]))
