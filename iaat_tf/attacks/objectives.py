"""Attack objectives: per-example functions of float32 logits, one registry.

Every objective maps logits [B, K] (and int labels [B]) to [B] values that an
attack maximises. `UNTARGETED` and `TARGETED` are the registries the attacks
(PGD, APGD, the robustness suite) look names up in; TRADES' KL divergence,
which compares two predictions, is here too (its attack and its loss share it).
"""

from typing import Callable

import tensorflow as tf

from iaat_tf.tensors import f32

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def cross_entropy_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """Per-example softmax cross-entropy on float32 logits."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
    labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
  )


def margin_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """Per-example CW margin: max_{j != y} z_j - z_y (positive = misclassified)."""
  logits = tf.cast(logits, tf.float32)
  num_classes = tf.shape(logits)[-1]
  onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
  true_logit = tf.reduce_sum(onehot * logits, axis=-1)
  other = tf.reduce_max(logits - onehot * 1e9, axis=-1)
  return other - true_logit


def kl_divergence(clean_logits: tf.Tensor, adv_logits: tf.Tensor) -> tf.Tensor:
  """[B] KL(p_clean || p_adv) = sum_j p_clean[j] (log p_clean[j] - log p_adv[j])."""
  log_clean = tf.nn.log_softmax(f32(clean_logits), axis=-1)
  log_adv = tf.nn.log_softmax(f32(adv_logits), axis=-1)
  return tf.reduce_sum(tf.exp(log_clean) * (log_clean - log_adv), axis=-1)


def dlr_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """Per-example DLR loss (Croce & Hein 2020, Eq. 6); needs >= 3 classes.

  Positive exactly when the example is misclassified; invariant to shifting
  and (positive) scaling of the logits.
  """
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(labels, tf.int32)
  num_classes = logits.shape[-1]
  if num_classes is not None and num_classes < 3:
    raise ValueError(f"The DLR loss needs >= 3 classes, got {num_classes}.")
  top, top_index = tf.math.top_k(logits, k=3)
  true_logit = tf.gather(logits, labels[:, None], batch_dims=1)[:, 0]
  true_is_top = tf.equal(top_index[:, 0], labels)
  best_other = tf.where(true_is_top, top[:, 1], top[:, 0])
  return -(true_logit - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: tf.Tensor, labels: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """AutoAttack's targeted DLR loss; needs >= 4 classes."""
  logits = tf.cast(logits, tf.float32)
  num_classes = logits.shape[-1]
  if num_classes is not None and num_classes < 4:
    raise ValueError(f"The targeted DLR loss needs >= 4 classes, got {num_classes}.")
  top = tf.math.top_k(logits, k=4).values
  true_logit = tf.gather(logits, tf.cast(labels, tf.int32)[:, None], batch_dims=1)[:, 0]
  target_logit = tf.gather(logits, tf.cast(targets, tf.int32)[:, None], batch_dims=1)[:, 0]
  return -(true_logit - target_logit) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def ce_targeted_loss(logits: tf.Tensor, labels: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """-CE towards the target class (the targeted loss for < 4 classes)."""
  del labels
  return -cross_entropy_loss(logits, targets)


# The registries: untargeted (logits, labels) and targeted (logits, labels,
# targets) objectives, by the name options and flags use.
UNTARGETED: dict[str, LossFn] = {"ce": cross_entropy_loss, "margin": margin_loss, "dlr": dlr_loss}
TARGETED = {"dlr-targeted": dlr_targeted_loss, "ce-targeted": ce_targeted_loss}
