"""Adversarial training: the per-batch step, its state and its plumbing.

* `radius`: IAAT's radius rules as pure functions of tensors.
* `eps_table`: `EpsTable`, the per-example radii and their cross-replica write.
* `losses`: the training losses (cross-entropy, TRADES, MART) per example.
* `probes`: Algorithm 2's probes (exact, the probe options, reuse).
* `recipe`: `TrainingRecipe`, the stages of one training step (every
  decision that depends on the method), for `fit` and custom loops.
* `trainer`: `AdversarialTrainer`, the `keras.Model` whose
  `train_step` is those stages plus Keras' plumbing.
* `optimizers`: SGD and Adam with PyTorch's coupled L2 weight decay, and
  `make_optimizer`; `schedules`: the learning-rate and momentum schedules.
* `devices`: the distribution strategy, and device slots for runs side by side.
* `runtime`: precision, checkpoints, and where each worker writes.
* `early_stopping`: the best-validation checkpoint.

Imports only go down: this package uses `iaat_tf.attacks` and
`iaat_tf.config`, never the data, evaluation, reports or command line.
"""
