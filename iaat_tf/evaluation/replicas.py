"""Data-parallel evaluation: the rows of one batch spread over a strategy's replicas.

The attacks are per example: every random draw is keyed by the example's id
and no statistic crosses examples, so an example's result does not depend on
which rows share its batch or its device. `Replicas.map` splits the rows
contiguously over the replicas (one share each), pads every share to one
power-of-two size (bounded retracing, XLA-friendly shapes; the padding
repeats a real row and is dropped), runs the function on each replica and
returns the rows' results in order. With one replica it is a plain call.

Create the classifier (or load the SavedModel) in `strategy.scope()` so each
replica reads its own copy of the weights.
"""

from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf


def bucket(n: int, cap: int) -> int:
  """n padded up to a power of two (at least 8), at most max(n, cap)."""
  return max(n, min(cap, max(8, 1 << max(n - 1, 0).bit_length())))


class Replicas:
  """Runs per-example functions over a strategy's local replicas."""

  def __init__(self, strategy: Optional[tf.distribute.Strategy] = None):
    self.strategy = strategy or tf.distribute.get_strategy()
    self.count = self.strategy.num_replicas_in_sync
    if self.count > 1 and len(self.strategy.extended.worker_devices) != self.count:
      raise ValueError(
        "Evaluation shards over one machine's replicas only "
        "(a MirroredStrategy), not over several workers."
      )
    self._distributed: dict = {}

  def map(
    self,
    fn: Callable[..., tf.Tensor],
    rows: Sequence[np.ndarray],
    shared: Sequence = (),
    cap: int = 1 << 30,
  ):
    """fn(*row_tensors, *shared) for the rows, as numpy (a structure of arrays).

    `rows`: arrays with the same first dimension n (the examples); `shared`:
    values every replica receives whole (e.g. a target rank). `cap`: the
    rows of a full batch; each share is padded to `bucket(share, cap /
    replicas)` rows, so a partial batch reuses the full batch's shapes.
    """
    n = len(rows[0])
    if n == 0:
      raise ValueError("Replicas.map needs at least one row.")
    per = -(-n // self.count)
    size = bucket(per, -(-cap // self.count))
    starts = [min(r * per, n) for r in range(self.count + 1)]
    starts[-1] = n

    def padded(r):
      share = np.arange(starts[r], starts[r + 1])
      filler = share[:1] if len(share) else np.zeros([1], np.int64)
      return np.concatenate([share, np.repeat(filler, size - len(share))])

    shared = tuple(tf.constant(s) for s in shared)
    if self.count == 1:
      pick = padded(0)
      out = fn(*(tf.constant(a[pick]) for a in rows), *shared)
      return _each(lambda t: t.numpy()[:n], out)

    picks = [padded(r) for r in range(self.count)]
    values = self.strategy.experimental_distribute_values_from_function(
      lambda ctx: tuple(tf.constant(a[picks[ctx.replica_id_in_sync_group]]) for a in rows)
    )
    run = self._distributed.get(fn)
    if run is None:
      run = tf.function(
        lambda args, extra: self.strategy.run(fn, args=(*args, *extra)), reduce_retracing=True
      )
      self._distributed[fn] = run
    out = run(values, shared)

    def gather(v):
      parts = self.strategy.experimental_local_results(v)
      return np.concatenate([p.numpy()[: starts[r + 1] - starts[r]] for r, p in enumerate(parts)])

    return _each(gather, out)


def _each(f, out):
  """f on a single output, or on each of a tuple of outputs."""
  return tuple(f(o) for o in out) if isinstance(out, (tuple, list)) else f(out)
