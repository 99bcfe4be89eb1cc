"""Adversarial training: the per-batch step, its state and its plumbing.

* `radius`: IAAT's radius rules as pure functions of tensors.
* `eps_table`: `EpsTable`, the per-example radii and their cross-replica write.
* `losses`: the training losses (cross-entropy, TRADES, MART) per example.
* `probes`: Algorithm 2's probes (exact, the probe options, reuse).
* `recipe`: `TrainingRecipe`, the stages of one training step (every
  decision that depends on the method), for `fit` and custom loops.
* `trainer`: `AdversarialTrainer`, the `keras.Model` whose
  `train_step` is those stages plus Keras' plumbing.
* `optimizers`: SGD with PyTorch's coupled L2 weight decay.
* `runtime`: devices, strategy, precision, optimizer, checkpoints.
* `early_stopping`: the best-validation checkpoint.

Imports only go down: this package uses `iaat_tf.attacks` and
`iaat_tf.config`, never the data, evaluation, reports or command line.
"""
