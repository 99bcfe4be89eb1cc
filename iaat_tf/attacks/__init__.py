"""Attacks: pure TensorFlow functions on a `logits_fn(images) -> logits`.

One attack (or attack ingredient) per module, as in cleverhans' `tf2/attacks/`:

* `pgd.py`: PGD with per-example radii (L-inf or L2), the one PGD core: its
  loop, its options (early stopping, row subsets) and one attack's spec (`PGD`).
* `noise.py`: keyed random starts (`per_example_uniform`, `Salt`).
* `apgd.py`, `fab.py`, `square.py`: AutoAttack's attacks.
* `kl_attack.py`: TRADES' KL attack.
* `norms.py` (the ball's geometry), `objectives.py` (losses),
  `gradients.py` (the precision-safe input gradient every loop uses).

This file only re-exports the names most users need.
"""

from iaat_tf.attacks.noise import Salt, per_example_normal, per_example_uniform  # noqa: F401
from iaat_tf.attacks.objectives import cross_entropy_loss, margin_loss  # noqa: F401
from iaat_tf.attacks.pgd import (
  PGD,
  LogitsFn,
  Outcome,
  broadcast_eps,
  is_correct,  # noqa: F401
  pgd_attack,
  pgd_from,
  pgd_run,
  pgd_step,
  pgd_step_size,
  uniform_start,
)
