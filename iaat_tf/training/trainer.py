"""The training wrapper: a `keras.Model` whose `train_step` runs adversarial training.

`AdversarialTrainer` holds a plain classifier (images in [0, 1] -> logits) and
adds, per the method in `MethodConfig`:

* `standard`: clean training.
* `pgd_at`: Madry PGD adversarial training at one radius `eps`.
* `iaat`: Instance Adaptive Adversarial Training (docs/ALGORITHM.md, Algorithm 2):
  each example's radius lives in an `EpsTable` indexed by the example's stable
  id, chosen per batch by two extra PGD attacks at eps and eps + gamma,
  smoothed, and trained on. Clean-misclassified examples (S-) have their new
  radius zeroed before the smoothing (so the table keeps (1 - beta) p) and
  train on the clean image (`s_minus="clean"`, the paper's Algorithm 1), or
  on the training attack at that stored radius (`s_minus="adversarial"`, the
  authors' code; docs/DEPARTURES.md). With `probe_source="training"`
  (`--alg2_preset=reuse`) there are no probe attacks: the batch trains at the
  stored radius, and the training attack (judged before the update) and a
  short extension of it are the probes (`probes.ProbeSpec.from_training_attack`).
* `iaat_cheap`: the paper's cheap rule: train at the stored radius and move it
  by +gamma if that training attack failed, -gamma if it succeeded (no
  smoothing unless `cheap_beta` > 0). The outcome is judged by an
  inference-mode forward pass (BatchNorm's running statistics, whatever
  `attack.bn_mode` is; `cheap_signal="train_forward"` reads the training
  forward pass instead).

During the first `warmup_epochs` both IAAT variants train at `eps` for
clean-correct examples (0 for the rest) and store that radius in the table.
`eps_ramp_epochs` ramps that radius (and pgd_at's) linearly from 0, per step.

The loss (`MethodConfig.loss`, `losses.py`) is orthogonal to the radius
rule: `ce` trains on PGD examples (the default), `trades` on TRADES' KL attack
(`kl_attack.py`) with CE(clean) + beta * KL(clean || adv), `mart` on PGD
examples with MART's loss. Radius probes always use cross-entropy PGD. Under
IAAT the S+/S- split is the same for every loss: with `s_minus="clean"` S-
examples train on their clean image and their KL term is masked (their loss
is TRADES' clean CE, or MART's boosted CE on the clean image; unmasked, the
two training-mode forwards on different batches would make it non-zero).

`train_step` is the stages of a `TrainingRecipe` (`recipe.py`: every
decision that depends on the method), which custom training loops call the
same way (docs/python_api.md); the trainer adds Keras' plumbing (epoch
counting, replicas, loss scaling, metrics). Only the classifier is
exported; the table lives in checkpoints (`trainer.eps_table.variable`).
"""

import inspect
from typing import Optional

import keras
import tensorflow as tf

from iaat_tf.attacks import noise, objectives, pgd
from iaat_tf.config import ADAPTIVE_METHODS, AttackConfig, MethodConfig, ValidationConfig
from iaat_tf.training.eps_table import EpsTable
from iaat_tf.training.recipe import TrainingRecipe, attack_logits_fn
from iaat_tf.training.weight_average import WeightAverage


def _images(inputs):
  return inputs["image"] if isinstance(inputs, dict) else inputs


def _num_steps(x, batch_size) -> int:
  """Batches per pass over `x` (0 if unknown): a dataset's cardinality, or
  ceil(examples / batch_size) for arrays (Keras' default batch size, 32)."""
  if isinstance(x, tf.data.Dataset):
    n = int(x.cardinality().numpy())
    return n if n > 0 else 0
  leaves = tf.nest.flatten(x) if x is not None else []
  if leaves and hasattr(leaves[0], "shape") and leaves[0].shape:
    return -(-int(leaves[0].shape[0]) // int(batch_size or 32))
  return 0


class AdversarialTrainer(keras.Model):
  """Wraps `classifier`; `fit` on ({"image", "index"}, label) batches.

  Pass `jit_compile` to `compile()` explicitly (Keras' default "auto"
  XLA-compiles the whole step on one GPU); `AttackConfig.jit_compile`
  compiles only the attack.
  """

  def __init__(
    self,
    classifier: keras.Model,
    num_train_examples: int,
    method: MethodConfig,
    attack: AttackConfig,
    validation: Optional[ValidationConfig] = None,
    seed: int = 0,
    steps_per_epoch: int = 0,
    ema_decay: float = 0.0,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.classifier = classifier
    self.method_config = method
    self.attack_config = attack
    self.validation_config = validation or ValidationConfig()
    self.seed = seed
    self.num_train_examples = int(num_train_examples)
    if method.eps_ramp_epochs and steps_per_epoch <= 0:
      raise ValueError("eps_ramp_epochs needs steps_per_epoch > 0")
    self.ramp_steps = method.eps_ramp_epochs * int(steps_per_epoch)
    # The radius table; its `variable` is what checkpoints hold (a raw
    # tf.Variable, tracked by tf.train.Checkpoint, not a Keras weight).
    self.eps_table = EpsTable(self.num_train_examples)
    # --ema_decay: a moving average of the classifier's weights, updated
    # after every optimizer step (weight_average.py); None when off.
    self.weight_average = WeightAverage(classifier, ema_decay) if ema_decay > 0 else None
    # The running epoch is derived in the graph from the optimizer's step
    # (see `epoch`); these two hold steps per epoch and fit's resume offset.
    self._steps_per_epoch = tf.Variable(
      max(0, int(steps_per_epoch)),
      dtype=tf.int64,
      trainable=False,
      name="steps_per_epoch",
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )
    self._epoch_offset = tf.Variable(
      0,
      dtype=tf.int64,
      trainable=False,
      name="epoch_offset",
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.train_accuracy = keras.metrics.Mean(name="train_acc")
    self.clean_accuracy = keras.metrics.Mean(name="clean_acc")
    self.eps_mean = keras.metrics.Mean(name="eps_mean")
    self.robust_accuracy = keras.metrics.Mean(name="pgd_acc")
    # The method's decisions and its compiled attacks (checks the settings).
    self.recipe = TrainingRecipe(classifier, method, attack, seed=seed, ramp_steps=self.ramp_steps)

  # -- Keras plumbing -------------------------------------------------------

  @property
  def epoch(self) -> tf.Tensor:
    """The running epoch (int64), derived from the optimizer's step count:
    iterations // steps_per_epoch + the offset `fit(initial_epoch=)` asks for.

    Restoring the optimizer (as the CLI's checkpoints do) restores it; after
    `fit` it is the number of epochs run. Under dynamic loss scaling a
    skipped (non-finite) step does not count, as for the learning-rate
    schedule.
    """
    steps = tf.maximum(self._steps_per_epoch, 1)
    iterations = self.optimizer.iterations if self.optimizer is not None else 0
    return tf.cast(iterations, tf.int64) // steps + self._epoch_offset

  def fit(self, *args, **kwargs):
    """`keras.Model.fit`; first learns how to count epochs (`epoch`).

    Steps per epoch come from fit's `steps_per_epoch`, else the trainer's,
    else the length of `x`. The offset makes `epoch` equal `initial_epoch`
    at the first step. The arguments go to Keras as given (with
    `shuffle=False` for a dataset unless given: Keras ignores it there).
    """
    given = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
    steps = (
      int(given.get("steps_per_epoch") or 0)
      or int(self._steps_per_epoch.numpy())
      or _num_steps(given.get("x"), given.get("batch_size"))
    )
    method = self.method_config
    if not steps and method.warmup_epochs > 0 and method.method in ADAPTIVE_METHODS:
      raise ValueError(
        "AdversarialTrainer: the warmup counts epochs, but the number of "
        "steps per epoch is unknown (a dataset of unknown length): pass "
        "steps_per_epoch= to the trainer or to fit"
      )
    self._steps_per_epoch.assign(steps)
    done = 0
    if self.optimizer is not None:  # Else Keras' own "compile first" error.
      done = int(self.optimizer.iterations.numpy()) // max(steps, 1)
    self._epoch_offset.assign(int(given.get("initial_epoch") or 0) - done)
    if (
      isinstance(given.get("x"), (tf.data.Dataset, tf.distribute.DistributedDataset))
      and "shuffle" not in given
    ):
      kwargs["shuffle"] = False  # Ignored for datasets: spares Keras' warning.
    return super().fit(*args, **kwargs)

  def call(self, inputs, training=False):
    # fit() may call this symbolically on the whole input dict: only the
    # image is used, never the index.
    return self.classifier(_images(inputs), training=training)

  @property
  def metrics(self):
    return [
      self.loss_tracker,
      self.train_accuracy,
      self.clean_accuracy,
      self.eps_mean,
      self.robust_accuracy,
    ]

  def get_metrics_result(self):
    """Results of the metrics updated in this phase (train or evaluation).

    Keras returns these exact, cross-replica results (not the last step's
    per-replica logs) only when their names match what the step returned,
    so metrics the phase does not update (count 0) are left out.
    """
    if not tf.executing_eagerly():
      return super().get_metrics_result()
    return {m.name: m.result() for m in self.metrics if float(m.count.numpy()) > 0}

  # -- training -------------------------------------------------------------

  def train_step(self, data):
    recipe, table = self.recipe, self.eps_table
    images, labels, index = recipe.batch(data[0], data[1])
    plan = recipe.radii_before_attack(
      images,
      labels,
      index,
      recipe.stored(table, index),
      step=tf.convert_to_tensor(self.optimizer.iterations),
      epoch=self.epoch,
    )
    x_adv, x_train = recipe.attack(images, labels, index, plan)
    judged = recipe.judge(images, labels, x_adv, x_train, plan)
    with tf.GradientTape() as tape:
      loss, logits = recipe.loss(images, x_train, labels, plan)
      # Gradients are summed over replicas: divide by their number (the same
      # scaling keras' own train_step applies).
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      scaled = self.optimizer.scale_loss(loss / tf.cast(replicas, loss.dtype))
    variables = self.classifier.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    if self.weight_average is not None:
      self.weight_average.update(self.optimizer.iterations)
    train_ok = pgd.is_correct(logits, labels)
    recipe.store(table, index, recipe.radii_after_update(plan, judged, train_ok))
    return self._train_logs(loss, train_ok, plan)

  def _train_logs(self, loss, train_ok, plan):
    self.loss_tracker.update_state(loss)
    self.train_accuracy.update_state(tf.cast(train_ok, tf.float32))
    # The radius actually trained at (0 for S- trained on the clean image).
    self.eps_mean.update_state(plan.trained_radii)
    logs = {"loss": self.loss_tracker.result(), "train_acc": self.train_accuracy.result()}
    if plan.clean_ok is not None:
      self.clean_accuracy.update_state(tf.cast(plan.clean_ok, tf.float32))
      logs["clean_acc"] = self.clean_accuracy.result()
    logs["eps_mean"] = self.eps_mean.result()
    return logs

  def test_step(self, data):
    """Clean and PGD accuracy (eval radius, inference-mode BatchNorm).

    The PGD is in the training attack's norm (`AttackConfig.norm`): one
    run has one threat model.

    Metrics are updated per example, and a replica whose share of the last
    partial batch is empty skips the model (convolutions reject an empty
    batch), so it contributes nothing instead of failing or a NaN mean.
    """
    inputs, labels = data[0], data[1]
    images = tf.cast(_images(inputs), tf.float32)
    labels = tf.cast(labels, tf.int32)
    if isinstance(inputs, dict) and "index" in inputs:
      index = tf.cast(inputs["index"], tf.int64)
    else:
      index = tf.range(tf.shape(images)[0], dtype=tf.int64)
    e = self.validation_config
    logits_fn = attack_logits_fn(self.classifier, "inference")

    def evaluate_batch():
      logits = logits_fn(images)
      x_adv = pgd.pgd_attack(
        logits_fn,
        images,
        labels,
        tf.fill(tf.shape(labels), e.eps),
        steps=e.steps,
        step_size=e.step_size,
        random_start=True,
        index=index,
        step=0,
        salt=noise.Salt.VALIDATION,
        seed=self.seed,
        norm=self.attack_config.norm,
      )
      return (
        objectives.cross_entropy_loss(logits, labels),
        tf.cast(pgd.is_correct(logits, labels), tf.float32),
        tf.cast(pgd.is_correct(logits_fn(x_adv), labels), tf.float32),
      )

    def empty_batch():
      nothing = tf.zeros([0], tf.float32)
      return nothing, nothing, nothing

    per_example, clean_ok, robust_ok = tf.cond(tf.shape(images)[0] > 0, evaluate_batch, empty_batch)
    self.loss_tracker.update_state(per_example)
    self.clean_accuracy.update_state(clean_ok)
    self.robust_accuracy.update_state(robust_ok)
    return {
      "loss": self.loss_tracker.result(),
      "clean_acc": self.clean_accuracy.result(),
      "pgd_acc": self.robust_accuracy.result(),
    }
