"""Training losses of adversarial training, as pure functions of logits.

Every function takes float32 logits ([B, classes]) and int labels ([B]) and
returns a per-example loss [B]; the trainer averages it over the batch (the
mean of these per-example terms equals the batch losses of the reference
implementations). Nothing here runs a model or an attack.

* `ce`: cross-entropy on the adversarial example (Madry PGD-AT, IAAT).
* `trades` (Zhang et al. 2019, TRADES' public code):
  CE(clean) + beta * KL(p_clean || p_adv).
* `mart` (Wang et al. 2020, MART's public code): boosted cross-entropy on the
  adversarial example, CE(adv) - log(1.0001 - max_{j != y} p_adv[j]), plus
  beta * KL(p_clean || p_adv) * (1.0000001 - p_clean[y]).

The constants 1e-12, 1.0001 and 1.0000001 are those of the MART code.
"""

import tensorflow as tf

from iaat_tf.attacks.objectives import cross_entropy_loss, kl_divergence
from iaat_tf.config import LOSSES
from iaat_tf.tensors import f32


def ce_loss(
  clean_logits: tf.Tensor, adv_logits: tf.Tensor, labels: tf.Tensor, beta: float = 0.0
) -> tf.Tensor:
  """[B] cross-entropy on the adversarial example (clean logits unused)."""
  del clean_logits, beta
  return cross_entropy_loss(adv_logits, labels)


def trades_loss(
  clean_logits: tf.Tensor, adv_logits: tf.Tensor, labels: tf.Tensor, beta: float
) -> tf.Tensor:
  """[B] TRADES: CE(clean) + beta * KL(p_clean || p_adv)."""
  return cross_entropy_loss(clean_logits, labels) + beta * kl_divergence(clean_logits, adv_logits)


def boosted_cross_entropy(adv_logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """[B] MART's BCE: CE(adv) - log(1.0001 - p_adv[y']), y' the top wrong class."""
  adv_logits = f32(adv_logits)
  labels = tf.cast(labels, tf.int32)
  probs = tf.nn.softmax(adv_logits, axis=-1)
  num_classes = tf.shape(probs)[-1]
  onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
  # The most likely class other than y (MART: argsort's top two).
  top_wrong = tf.argmax(probs - 2.0 * onehot, axis=-1, output_type=tf.int32)
  p_wrong = tf.reduce_sum(tf.one_hot(top_wrong, num_classes) * probs, axis=-1)
  return cross_entropy_loss(adv_logits, labels) - tf.math.log(1.0001 - p_wrong + 1e-12)


def mart_loss(
  clean_logits: tf.Tensor, adv_logits: tf.Tensor, labels: tf.Tensor, beta: float
) -> tf.Tensor:
  """[B] MART: BCE(adv) + beta * KL(p_clean || p_adv) * (1 - p_clean[y])."""
  clean_logits, adv_logits = f32(clean_logits), f32(adv_logits)
  labels = tf.cast(labels, tf.int32)
  clean_probs = tf.nn.softmax(clean_logits, axis=-1)
  p_true = tf.gather(clean_probs, labels, axis=-1, batch_dims=1)
  # MART's KL: sum p_clean * (log p_clean - log(p_adv + 1e-12)).
  adv_probs = tf.nn.softmax(adv_logits, axis=-1)
  log_clean = tf.nn.log_softmax(clean_logits, axis=-1)
  kl = tf.reduce_sum(clean_probs * (log_clean - tf.math.log(adv_probs + 1e-12)), axis=-1)
  return boosted_cross_entropy(adv_logits, labels) + beta * kl * (1.0000001 - p_true)


PER_EXAMPLE = {"ce": ce_loss, "trades": trades_loss, "mart": mart_loss}


def per_example_loss(name: str, clean_logits, adv_logits, labels, beta: float) -> tf.Tensor:
  """[B] the loss `name` ("ce", "trades", "mart") with weight `beta`."""
  if name not in PER_EXAMPLE:
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
  return PER_EXAMPLE[name](clean_logits, adv_logits, labels, beta)


def needs_clean_logits(name: str) -> bool:
  """Whether the loss reads the clean example's training-mode logits."""
  return name in ("trades", "mart")
