"""The training wrapper: a `keras.Model` whose `train_step` runs adversarial training.

`AdversarialTrainer` holds a plain classifier (images in [0, 1] -> logits) and
adds, per the method in `MethodConfig`:

* `standard`: clean training.
* `pgd_at`: Madry PGD adversarial training at one radius `eps`.
* `iaat`: Instance Adaptive Adversarial Training (ALGORITHM.md, Algorithm 2):
  each example's radius lives in `eps_table` (a `tf.Variable` indexed by the
  example's stable id), chosen per batch by two extra PGD attacks at eps and
  eps + gamma, smoothed, and trained on; clean-misclassified examples (S-)
  get the clean loss and radius 0.
* `iaat_cheap`: the paper's cheap rule: train at the stored radius and move it
  by +gamma if that training attack failed, -gamma if it succeeded.

During the first `warmup_epochs` both IAAT variants train at `eps` for
clean-correct examples (0 for the rest) and store that radius in the table.

Under `tf.distribute` the table write is made consistent across replicas by
all-gathering (index, new eps) from every replica and scatter-updating the
variable (aggregation ONLY_FIRST_REPLICA), so 1 and N replicas agree.
Only the classifier is exported; the table lives in checkpoints.
"""

from typing import Optional

import keras
import tensorflow as tf

from iaat_tf import attacks
from iaat_tf.config import AttackConfig, EvalConfig, MethodConfig


def _images(inputs):
  return inputs["image"] if isinstance(inputs, dict) else inputs


class AdversarialTrainer(keras.Model):
  """Wraps `classifier`; `fit` on ({"image", "index"}, label) batches."""

  def __init__(self, classifier: keras.Model, num_train_examples: int,
               method: MethodConfig, attack: AttackConfig,
               evaluation: Optional[EvalConfig] = None, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.classifier = classifier
    self.method_config = method
    self.attack_config = attack
    self.eval_config = evaluation or EvalConfig()
    self.seed = seed
    self.num_train_examples = int(num_train_examples)
    # Raw tf.Variables: tracked by tf.train.Checkpoint, not Keras weights.
    self.eps_table = tf.Variable(
        tf.zeros([self.num_train_examples], tf.float32), trainable=False,
        name="eps_table",
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.epoch = tf.Variable(
        0, dtype=tf.int64, trainable=False, name="epoch",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.train_accuracy = keras.metrics.Mean(name="train_acc")
    self.clean_accuracy = keras.metrics.Mean(name="clean_acc")
    self.eps_mean = keras.metrics.Mean(name="eps_mean")
    self.robust_accuracy = keras.metrics.Mean(name="pgd_acc")
    self._attack_fn = tf.function(self._attack, jit_compile=attack.jit_compile,
                                  reduce_retracing=True)

  # -- Keras plumbing -------------------------------------------------------

  def call(self, inputs, training=False):
    # fit() may call this symbolically on the whole input dict: only the
    # image is used, never the index.
    return self.classifier(_images(inputs), training=training)

  @property
  def metrics(self):
    return [self.loss_tracker, self.train_accuracy, self.clean_accuracy,
            self.eps_mean, self.robust_accuracy]

  # -- attacks --------------------------------------------------------------

  def _logits_for_attack(self, images):
    training = self.attack_config.bn_mode == "train"
    return tf.cast(self.classifier(images, training=training), tf.float32)

  def _attack(self, images, labels, eps, index, step, salt):
    a = self.attack_config
    return attacks.pgd_attack(
        self._logits_for_attack, images, labels, eps, steps=a.steps,
        step_size=attacks.pgd_step_size(eps, a.step_ratio, a.min_step),
        random_start=a.random_start, index=index, step=step, salt=salt,
        seed=self.seed)

  def _attack_fails(self, images, labels, eps, index, step, salt):
    """[B] bool: the example is still classified correctly under PGD at eps."""
    x_adv = self._attack_fn(images, labels, eps, index, step, salt)
    return attacks.is_correct(self._logits_for_attack(x_adv), labels)

  # -- radius selection -----------------------------------------------------

  def _clip(self, eps):
    return tf.clip_by_value(eps, 0.0, self.method_config.eps_max)

  def _smooth(self, stored, selected):
    beta = self.method_config.beta
    return beta * selected + (1.0 - beta) * stored

  def select_eps_algorithm2(self, images, labels, index, stored, clean_ok, step):
    """ALGORITHM.md's Algorithm 2: try stored + gamma, then stored, else shrink."""
    gamma = self.method_config.gamma
    up_fails = self._attack_fails(images, labels, stored + gamma, index, step, 1)
    same_fails = self._attack_fails(images, labels, stored, index, step, 2)
    selected = tf.where(up_fails, stored + gamma,
                        tf.where(same_fails, stored, stored - gamma))
    selected = tf.maximum(selected * tf.cast(clean_ok, tf.float32), 0.0)
    return self._clip(self._smooth(stored, selected))

  def select_eps_cheap(self, stored, attack_failed, clean_ok):
    """The paper's rule: +gamma after a failed attack, -gamma after a success."""
    gamma = self.method_config.gamma
    selected = stored + tf.where(attack_failed, gamma, -gamma)
    selected = tf.maximum(selected * tf.cast(clean_ok, tf.float32), 0.0)
    return self._clip(self._smooth(stored, selected))

  def write_eps(self, index, new_eps):
    """Scatter this step's radii into the table, the same on every replica.

    In a replica context the (index, eps) pairs of all replicas are collected
    in a cross-replica `merge_call` and scatter-updated into the
    ONLY_FIRST_REPLICA table, which mirrors the update to every local device:
    no replica's updates are lost and the copies never diverge. On one worker
    the local replicas' values are simply concatenated
    (`experimental_local_results`, no collective); with several workers
    (MultiWorkerMirroredStrategy) they are all-gathered across workers with
    `strategy.gather`, a cross-replica collective that every worker issues at
    the same point of the step. Indices are unique within a global batch, so
    the order of the gathered pairs does not matter.
    """
    ctx = tf.distribute.get_replica_context()
    index = tf.cast(index, tf.int64)
    new_eps = tf.cast(new_eps, tf.float32)
    if ctx is None or ctx.num_replicas_in_sync == 1:
      self.eps_table.scatter_update(tf.IndexedSlices(new_eps, index))
      return

    def merge_fn(strategy, per_replica_index, per_replica_eps):
      local_replicas = len(strategy.extended.worker_devices)
      if local_replicas < strategy.num_replicas_in_sync:  # Several workers.
        all_index = strategy.gather(per_replica_index, axis=0)
        all_eps = strategy.gather(per_replica_eps, axis=0)
      else:
        all_index = tf.concat(strategy.experimental_local_results(per_replica_index), 0)
        all_eps = tf.concat(strategy.experimental_local_results(per_replica_eps), 0)
      self.eps_table.scatter_update(tf.IndexedSlices(all_eps, all_index))

    ctx.merge_call(merge_fn, args=(index, new_eps))

  # -- training -------------------------------------------------------------

  def train_step(self, data):
    inputs, labels = data[0], data[1]
    images = tf.cast(inputs["image"], tf.float32)
    index = tf.cast(inputs["index"], tf.int64)
    labels = tf.cast(labels, tf.int32)
    method = self.method_config.method
    step = tf.convert_to_tensor(self.optimizer.iterations)
    eps_w = self.method_config.eps

    clean_ok = None
    eps_store = None
    if method == "standard":
      eps_train = tf.zeros_like(labels, tf.float32)
      x_train = images
    elif method == "pgd_at":
      eps_train = tf.fill(tf.shape(labels), eps_w)
      x_train = self._attack_fn(images, labels, eps_train, index, step, 0)
    else:  # iaat, iaat_cheap
      clean_ok = attacks.is_correct(self._logits_for_attack(images), labels)
      clean_mask = tf.cast(clean_ok, tf.float32)
      stored = tf.gather(self.eps_table, index)
      in_warmup = self.epoch < self.method_config.warmup_epochs
      warm_eps = lambda: eps_w * clean_mask
      if method == "iaat":
        eps_train = tf.cond(
            in_warmup, warm_eps,
            lambda: self.select_eps_algorithm2(images, labels, index, stored,
                                               clean_ok, step))
      else:
        eps_train = tf.cond(in_warmup, warm_eps, lambda: stored * clean_mask)
      x_adv = self._attack_fn(images, labels, eps_train, index, step, 0)
      # Algorithm 1, line 10: adversarial loss on S+, clean loss on S-.
      x_train = tf.where(tf.reshape(clean_ok, [-1, 1, 1, 1]), x_adv, images)
      eps_store = eps_train

    with tf.GradientTape() as tape:
      logits = tf.cast(self.classifier(x_train, training=True), tf.float32)
      per_example = attacks.cross_entropy_loss(logits, labels)
      loss = tf.reduce_mean(per_example)
      if self.classifier.losses:
        loss += tf.add_n([tf.cast(l, tf.float32) for l in self.classifier.losses])
      # Gradients are summed over replicas: divide by their number (the same
      # scaling keras' own train_step applies).
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      scaled = loss / tf.cast(replicas, loss.dtype)
      scaled = self.optimizer.scale_loss(scaled)

    train_ok = attacks.is_correct(logits, labels)
    if method == "iaat_cheap":
      eps_store = tf.cond(
          in_warmup, lambda: eps_train,
          lambda: self.select_eps_cheap(stored, train_ok, clean_ok))
    variables = self.classifier.trainable_variables
    grads = tape.gradient(scaled, variables)
    self.optimizer.apply_gradients(zip(grads, variables))
    if eps_store is not None:
      self.write_eps(index, eps_store)

    self.loss_tracker.update_state(loss)
    self.train_accuracy.update_state(tf.cast(train_ok, tf.float32))
    if clean_ok is not None:
      self.clean_accuracy.update_state(tf.cast(clean_ok, tf.float32))
    self.eps_mean.update_state(eps_train)
    return {m.name: m.result() for m in self.metrics[:4]}

  def test_step(self, data):
    """Clean and PGD accuracy (eval radius, inference-mode BatchNorm)."""
    inputs, labels = data[0], data[1]
    images = tf.cast(_images(inputs), tf.float32)
    labels = tf.cast(labels, tf.int32)
    if isinstance(inputs, dict) and "index" in inputs:
      index = tf.cast(inputs["index"], tf.int64)
    else:
      index = tf.range(tf.shape(images)[0], dtype=tf.int64)
    e = self.eval_config
    logits_fn = lambda x: tf.cast(self.classifier(x, training=False), tf.float32)
    logits = logits_fn(images)
    per_example = attacks.cross_entropy_loss(logits, labels)
    x_adv = attacks.pgd_attack(
        logits_fn, images, labels, tf.fill(tf.shape(labels), e.eps),
        steps=e.steps, step_size=e.step_size, random_start=True, index=index,
        step=0, salt=7, seed=self.seed)
    robust_ok = attacks.is_correct(logits_fn(x_adv), labels)
    self.loss_tracker.update_state(tf.reduce_mean(per_example))
    self.clean_accuracy.update_state(
        tf.cast(attacks.is_correct(logits, labels), tf.float32))
    self.robust_accuracy.update_state(tf.cast(robust_ok, tf.float32))
    return {"loss": self.loss_tracker.result(),
            "clean_acc": self.clean_accuracy.result(),
            "pgd_acc": self.robust_accuracy.result()}
