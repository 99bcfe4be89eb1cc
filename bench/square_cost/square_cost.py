"""Cost of Square with and without querying broken examples (one run each).

    python -m bench.square_cost.square_cost --run_dir=/tmp/sminus/seed0/iaat --out=bench/square_cost/SQUARE_COST.md

Two models: the trained run given by --run_dir (the digits quick start: a
tiny CNN on 8x8 images) and, unless --skip_wrn, a WideResNet-10-4 trained
for 3 epochs on the digits upsampled to 32x32x3 (256 test images, eps 4/255),
where the forward pass, not the bookkeeping, dominates a query.

Times `square.square_attack` (AutoAttack's settings: p_init 0.8, eps of the
run's evaluation) on a trained run's test split, querying every example at
every query (`only_unbroken=False`, what XLA needs) and only the examples
still unbroken (the default, like the reference), checks that both give the
same per-example result, and writes seconds per 1,000 examples and the ratio.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from iaat_tf import data
from iaat_tf.runs import run_evaluation
from iaat_tf.attacks import square


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run_dir", required=True)
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--eps", type=float, default=0.0, help="0: the run's --eval_eps")
  parser.add_argument("--out", default="bench/square_cost/SQUARE_COST.md")
  parser.add_argument("--skip_wrn", action="store_true")
  parser.add_argument("--wrn_queries", type=int, default=300)
  args = parser.parse_args()
  config = run_evaluation.load_run_config(args.run_dir)
  datasets = data.load_datasets(config.data)
  model = run_evaluation.classifier_from_checkpoint(config, datasets.info, args.run_dir)
  images, labels = [], []
  for inputs, y in datasets.test:
    images.append(inputs["image"].numpy()), labels.append(y.numpy())
  rows = [
    _measure(
      f"`{args.run_dir}` (digits 8x8, tiny CNN)",
      model,
      np.concatenate(images),
      np.concatenate(labels),
      args.eps or config.validation.eps,
      args.queries,
    )
  ]
  if not args.skip_wrn:
    rows.append(
      _measure("WideResNet-10-4, digits at 32x32x3", *_wrn_digits32(), 4 / 255, args.wrn_queries)
    )
  text = (
    "# Square: querying only unbroken examples\n\n"
    f"    python -m bench.square_cost.square_cost --run_dir={args.run_dir}\n\n"
    "One run each after a warm-up run, this machine's CPU (2 cores). "
    "`all` queries every example at every query (the path XLA needs), "
    "`unbroken` only the examples still correctly classified (the "
    "default, like the reference).\n\n"
    "| model | examples | eps | queries | robust at the end | all: s | unbroken: s | speed-up | same result |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "".join(rows)
  )
  with open(args.out, "w") as f:
    f.write(text)
  print(text)


def _wrn_digits32():
  import keras  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from iaat_tf import models  # pylint: disable=g-import-not-at-top
  from iaat_tf.config import ModelConfig  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]
  x = tf.image.resize(np.repeat(x, 3, -1), [32, 32]).numpy()
  keras.utils.set_random_seed(0)
  model = models.build_classifier(
    ModelConfig("wide_resnet", depth=10, width=4), (32, 32, 3), 10, "cifar10"
  )
  model.compile(
    keras.optimizers.Adam(1e-3),
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=False,
  )
  model.fit(x[:1400], digits.target[:1400], batch_size=64, epochs=3, verbose=0)
  return model, x[1400:1656], digits.target[1400:1656]


def _measure(name, model, x, y, eps, queries) -> str:
  logits_fn = lambda z: tf.cast(model(z, training=False), tf.float32)
  results, seconds = {}, {}
  for only in (False, True, False, True):  # The second round is warm.
    fn = tf.function(
      lambda only=only: square.square_attack(
        logits_fn, x, y, eps, n_queries=queries, index=np.arange(len(x)), only_unbroken=only
      )
    )
    start = time.perf_counter()
    results[only] = fn()
    seconds[only] = time.perf_counter() - start
  same = bool(np.array_equal(results[True].robust.numpy(), results[False].robust.numpy()))
  robust = int(results[True].robust.numpy().sum())
  return (
    f"| {name} | {len(x)} | {eps:.4g} | {queries} | {robust} | "
    f"{seconds[False]:.1f} | {seconds[True]:.1f} | "
    f"{seconds[False] / seconds[True]:.2f}x | {same} |\n"
  )


if __name__ == "__main__":
  main()
