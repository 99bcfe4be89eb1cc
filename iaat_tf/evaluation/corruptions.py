"""Clean accuracy under common corruptions (CIFAR-10-C, tfds `cifar10_corrupted`).

Reads each prepared corruption/severity config from a tfds data directory;
configs that are not there are listed as missing, never downloaded.
"""

from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf


def corruption_accuracy(
  logits_fn,
  names: Sequence[str],
  severities: Sequence[int],
  *,
  data_dir: Optional[str],
  max_examples: int = 0,
  batch_size: int = 256,
  log: Callable[[str], None] = print,
) -> dict:
  """{"available", "accuracy": {name_severity: acc}, "mean_accuracy"[, "missing"]}."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  results, missing = {}, []
  for name in names:
    for severity in severities:
      key = f"{name}_{severity}"
      try:
        ds = tfds.load(
          f"cifar10_corrupted/{key}",
          split="test",
          data_dir=data_dir,
          download=False,
          as_supervised=True,
        )
      except Exception:  # Not prepared under data_dir.
        missing.append(key)
        continue
      if max_examples:
        ds = ds.take(max_examples)
      correct = total = 0
      for images, labels in ds.batch(batch_size):
        logits = logits_fn(tf.cast(images, tf.float32) / 255.0)
        correct += int(
          tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.cast(labels, tf.int64), tf.int32))
        )
        total += int(labels.shape[0])
      results[key] = correct / max(total, 1)
      log(f"evaluate: CIFAR-10-C {key}: {results[key]:.4f}")
  out = {
    "available": bool(results),
    "accuracy": results,
    "mean_accuracy": float(np.mean(list(results.values()))) if results else None,
  }
  if missing:
    out["missing"] = missing
    out["message"] = (
      f"{len(missing)} CIFAR-10-C config(s) not found under "
      f"--data_dir={data_dir} (tfds cifar10_corrupted; prepare them "
      "with `tfds build cifar10_corrupted`)"
    )
    log(f"evaluate: {out['message']}")
  return out
