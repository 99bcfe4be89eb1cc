"""The per-batch pieces of adversarial training, as plain functions.

`AdversarialTrainer.train_step` is these functions composed; a custom
training loop can call them directly (see README, "Custom training loops"):

    craft = batch_steps.make_pgd(logits_fn, attack_config, seed=0)
    clean_ok = batch_steps.clean_correct(logits_fn, images, labels)
    stored = table.gather(index)
    eps = batch_steps.choose_radii(craft, logits_fn, images, labels, index,
                                   stored, clean_ok, method_config,
                                   step=step, in_warmup=epoch < warmup_epochs)
    x_adv = craft(images, labels, eps, index, step, batch_steps.SALT_TRAIN)
    x_train = batch_steps.training_images(images, x_adv, clean_ok)
    ... loss and optimizer step on x_train ...
    table.write(index, batch_steps.radii_to_store(...))

`logits_fn` maps float32 images in [0, 1] to float32 logits and runs the
classifier in the attack's BatchNorm mode (`attack_logits_fn`). Nothing here
owns state: the eps table is `eps_table.EpsTable`, the radius arithmetic is
`radius.py`.
"""

from typing import Callable

import tensorflow as tf

from iaat_tf import attacks
from iaat_tf import radius
from iaat_tf.config import AttackConfig, MethodConfig

# (images, labels, eps, index, step, salt) -> adversarial images.
CraftFn = Callable[..., tf.Tensor]

ADAPTIVE_METHODS = ("iaat", "iaat_cheap")

# Random-start salts of the training attacks (all salts: `attacks.Salt`).
SALT_TRAIN = attacks.Salt.TRAIN
SALT_PROBE_UP = attacks.Salt.PROBE_UP
SALT_PROBE_SAME = attacks.Salt.PROBE_SAME


def attack_logits_fn(classifier, bn_mode: str = "inference") -> attacks.LogitsFn:
  """images -> float32 logits, BatchNorm in `bn_mode` ("inference" or "train")."""
  training = bn_mode == "train"
  return lambda images: tf.cast(classifier(images, training=training), tf.float32)


def make_pgd(logits_fn: attacks.LogitsFn, attack: AttackConfig, seed: int = 0,
             jit_compile: bool | None = None) -> CraftFn:
  """A tf.function crafting PGD examples with the training attack's settings.

  Returns craft(images, labels, eps, index, step, salt): k signed steps of
  size max(eps * step_ratio, min_step), random start keyed by (index, step,
  salt, seed). `jit_compile=True` XLA-compiles it; None leaves the choice to
  an enclosing function (e.g. a whole-step XLA train function).
  """

  def craft(images, labels, eps, index, step, salt):
    return attacks.pgd_attack(
        logits_fn, images, labels, eps, steps=attack.steps,
        step_size=attacks.pgd_step_size(eps, attack.step_ratio, attack.min_step),
        random_start=attack.random_start, index=index, step=step, salt=salt,
        seed=seed)

  if jit_compile is None:
    return tf.function(craft, reduce_retracing=True)
  return tf.function(craft, jit_compile=jit_compile, reduce_retracing=True)


def clean_correct(logits_fn: attacks.LogitsFn, images: tf.Tensor,
                  labels: tf.Tensor) -> tf.Tensor:
  """[B] bool: the example is classified correctly without attack (S+)."""
  return attacks.is_correct(logits_fn(images), labels)


def attack_fails(craft: CraftFn, logits_fn: attacks.LogitsFn, images, labels,
                 eps, index, step, salt) -> tf.Tensor:
  """[B] bool: still classified correctly under the attack at `eps`."""
  x_adv = craft(images, labels, eps, index, step, salt)
  return attacks.is_correct(logits_fn(x_adv), labels)


def algorithm2_radii(craft: CraftFn, logits_fn: attacks.LogitsFn, images,
                     labels, index, stored, clean_ok, method: MethodConfig,
                     step) -> tf.Tensor:
  """Algorithm 2: probe at stored + gamma and at stored, then `radius` rules."""
  gamma = method.gamma
  up_fails = attack_fails(craft, logits_fn, images, labels, stored + gamma,
                          index, step, SALT_PROBE_UP)
  same_fails = attack_fails(craft, logits_fn, images, labels, stored, index,
                            step, SALT_PROBE_SAME)
  return radius.algorithm2_update(stored, up_fails, same_fails, clean_ok,
                                  gamma=gamma, beta=method.beta,
                                  eps_max=method.eps_max)


def choose_radii(craft: CraftFn, logits_fn: attacks.LogitsFn, images, labels,
                 index, stored, clean_ok, method: MethodConfig, *, step,
                 in_warmup) -> tf.Tensor:
  """[B] float32 training radii of this batch for `method.method`.

  * standard: 0; pgd_at: `method.eps` for every example.
  * iaat, iaat_cheap during warmup: `method.eps` for clean-correct examples,
    0 for the rest.
  * iaat after warmup: Algorithm 2's new radii (two probe attacks).
  * iaat_cheap after warmup: the stored radii (0 for clean-misclassified);
    the table is updated after the step from the attack's outcome.

  `in_warmup` may be a Python bool or a scalar bool tensor.
  """
  labels = tf.cast(labels, tf.int32)
  name = method.method
  if name == "standard":
    return tf.zeros(tf.shape(labels), tf.float32)
  if name == "pgd_at":
    return tf.fill(tf.shape(labels), tf.constant(method.eps, tf.float32))
  if name not in ADAPTIVE_METHODS:
    raise ValueError(f"unknown method {name!r}")
  warm = lambda: radius.warmup(method.eps, clean_ok)
  if name == "iaat":
    adapt = lambda: algorithm2_radii(craft, logits_fn, images, labels, index,
                                     stored, clean_ok, method, step)
  else:
    adapt = lambda: radius.zero_if_misclassified(stored, clean_ok)
  if isinstance(in_warmup, bool):
    return warm() if in_warmup else adapt()
  return tf.cond(in_warmup, warm, adapt)


def training_images(images: tf.Tensor, x_adv: tf.Tensor,
                    clean_ok: tf.Tensor | None) -> tf.Tensor:
  """Algorithm 1, line 10: adversarial images for S+, clean images for S-."""
  if clean_ok is None:
    return x_adv
  return tf.where(tf.reshape(clean_ok, [-1, 1, 1, 1]), x_adv, images)


def radii_to_store(method: MethodConfig, eps_train, stored, clean_ok,
                   attack_failed, in_warmup) -> tf.Tensor:
  """The radii to write to the table after the step (adaptive methods).

  iaat stores the radii it trained at (Algorithm 2's choice, or the warmup
  radius). iaat_cheap after warmup applies the paper's rule to the training
  attack's outcome (`attack_failed`, [B] bool: still correct under the
  training attack); `method.cheap_beta` > 0 adds smoothing.
  """
  if method.method != "iaat_cheap":
    return eps_train
  beta = method.cheap_beta if method.cheap_beta > 0 else None
  cheap = lambda: radius.cheap_update(stored, attack_failed, clean_ok,
                                      gamma=method.gamma, eps_max=method.eps_max,
                                      beta=beta)
  if isinstance(in_warmup, bool):
    return eps_train if in_warmup else cheap()
  return tf.cond(in_warmup, lambda: tf.cast(eps_train, tf.float32), cheap)


def cheap_outcome(method: MethodConfig, logits_fn: attacks.LogitsFn,
                  x_train: tf.Tensor, labels: tf.Tensor,
                  train_logits: tf.Tensor) -> tf.Tensor | None:
  """iaat_cheap's signal for `radii_to_store`; None for the other methods.

  [B] bool: the training attack failed (the example stayed correct). Call
  it BEFORE the optimizer update, so the outcome is the attack's against the
  model it attacked: an inference-mode forward pass on `x_train`
  (`method.cheap_signal == "inference"`, the trainer's default, like
  Algorithm 2's probes) or the training forward pass's logits
  ("train_forward", free, but with BatchNorm batch statistics and dropout).
  """
  if method.method != "iaat_cheap":
    return None
  if method.cheap_signal == "train_forward":
    return attacks.is_correct(train_logits, labels)
  return attacks.is_correct(logits_fn(x_train), labels)
