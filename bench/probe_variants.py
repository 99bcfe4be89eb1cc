"""Algorithm 2's variants against PGD-AT: step time (one run) and passes per image.

The variants (same model, same k): PGD-AT, exact Algorithm 2 (two probe
attacks, then the training attack), `--alg2_preset=reuse` (the training
attack and a short extension of it are the probes), `--alg2_preset=fast`
(short early-stopping probes on the examples whose outcome is used) and the
cheap rule (`--method=iaat_cheap`).

Step time: every variant of one model is timed round-robin in one process
(bench/common.time_group), so the ratios to PGD-AT come from one run: the
quick-start CNN on 8x8 digits at k=5 (with `run_dir`, in the trained state
of a finished quick-start run: the decisions Algorithm 2 faces at the end
of training) and WRN-16-2 at 32x32 at k=10 (random weights and labels).

Passes per trained image: every forward and backward pass of the network
counted, eagerly, over a few batches of the digits model (the training pass
is one of each; an input-gradient step is one of each; a decision is one
forward pass). This is the number that transfers to a GPU. Only `fast`
does data-dependent work (early stops, skipped examples): count it in the
trained state (`run_dir`), the decisions of real training.

  python -m bench.probe_variants --output=/tmp/probe_variants.json [--run_dir=RUN] [--quick]
"""

import argparse
import contextlib
import json
import os
import sys
from typing import Dict, List, Optional


import tensorflow as tf  # pylint: disable=g-import-not-at-top

from bench import common  # pylint: disable=g-import-not-at-top
from bench.common import Group, ModelSpec, Variant  # pylint: disable=g-import-not-at-top
from iaat_tf.attacks import gradients  # pylint: disable=g-import-not-at-top
from iaat_tf.config import ModelConfig, alg2_preset  # pylint: disable=g-import-not-at-top
from iaat_tf.training import recipe  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RATIO = 0.25  # bench.common.build_trainer's attack step ratio.
# name -> (method, MethodConfig options for a k-step attack)
VARIANTS = {
  "pgd_at": ("pgd_at", lambda k: {}),
  "exact": ("iaat", lambda k: {}),
  "reuse": ("iaat", lambda k: alg2_preset("reuse", k, RATIO)),
  "fast": ("iaat", lambda k: alg2_preset("fast", k, RATIO)),
  "cheap": ("iaat_cheap", lambda k: {}),
}
DIGITS = ModelSpec("small_cnn_8x8", ModelConfig("small_cnn"), (8, 8, 1), 64, "digits")
WRN = ModelSpec(
  "wrn_16_2_32x32", ModelConfig("wide_resnet", depth=16, width=2), (32, 32, 3), 32, "cifar10"
)


def variant(name: str, k: int, state: str = "random", run_dir: str = "") -> Variant:
  method, options = VARIANTS[name]
  return Variant(
    method,
    k,
    method_options=tuple(sorted(options(k).items())),
    state=state,
    name=name,
    run_dir=run_dir,
  )


def plan(quick: bool, run_dir: Optional[str]) -> List[Group]:
  state = "trained" if run_dir else "random"
  digits = Group(
    DIGITS,
    [variant(v, 5, state, run_dir or "") for v in VARIANTS],
    repeats=3 if quick else 7,
    repeat_seconds=0.2 if quick else 0.5,
    section="probe_variants",
  )
  if quick:
    return [digits]
  wrn = Group(
    WRN,
    [variant(v, 10) for v in VARIANTS],
    repeats=3,
    repeat_seconds=1.0,
    max_steps=2,
    section="probe_variants",
  )
  return [digits, wrn]


def ratios(rows: List[dict]) -> List[dict]:
  """Each variant's step time / PGD-AT's, per model (same run)."""
  out = []
  for r in rows:
    base = next(p for p in rows if p["model"] == r["model"] and p["name"] == "pgd_at")
    out.append(
      {
        "model": r["model"],
        "k": r["k"],
        "state": r["state"],
        "variant": r["name"],
        "ms_per_step": r["step_seconds_median"] * 1e3,
        "ratio_vs_pgd_at": r["step_seconds_median"] / base["step_seconds_median"],
      }
    )
  return out


@contextlib.contextmanager
def _counting(counts: Dict[str, int]):
  """Counts the rows of every attack-side forward and input-gradient pass."""
  make_logits_fn, value_and_gradient = (recipe.attack_logits_fn, gradients.value_and_gradient)

  def counting_logits_fn(classifier, bn_mode="inference"):
    inner = make_logits_fn(classifier, bn_mode)

    def logits_fn(images):
      counts["forward"] += int(images.shape[0])
      return inner(images)

    logits_fn.independent_examples = gradients.independent_examples(inner)
    return logits_fn

  def counting_value_and_gradient(logits_fn, images, *args, **kwargs):
    counts["backward"] += int(images.shape[0])  # Its forward is counted by logits_fn.
    return value_and_gradient(logits_fn, images, *args, **kwargs)

  recipe.attack_logits_fn = counting_logits_fn
  gradients.value_and_gradient = counting_value_and_gradient
  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(False)
    recipe.attack_logits_fn = make_logits_fn
    gradients.value_and_gradient = value_and_gradient


def count_passes(spec: ModelSpec, v: Variant, batches: int = 4) -> dict:
  """Forward and backward passes per trained image, counted over `batches`."""
  counts = {"forward": 0, "backward": 0}
  with _counting(counts):
    trainer = common.build_trainer(spec, v, spec.batch * 4)
    if v.state == "trained":
      data = common.trained_state(trainer, spec, v.run_dir)
    else:
      data = common.random_batches(spec, robust=v.state == "robust")
    trainer.fit(data.take(1), epochs=1, verbose=0)  # Builds (not counted).
    counts.update(forward=0, backward=0)
    trainer.fit(data.take(batches), epochs=1, verbose=0)
  images = spec.batch * batches
  # The training pass (loss on x_train, weight gradient) is not an attack
  # pass: one forward and one backward per image for every method.
  forward = counts["forward"] / images + 1
  backward = counts["backward"] / images + 1
  return {
    "model": spec.key,
    "k": v.k,
    "variant": v.name,
    "state": v.state,
    "forward": forward,
    "backward": backward,
    "passes": forward + backward,
  }


def run(quick: bool, log, run_dir: Optional[str] = None) -> dict:
  groups = [common.time_group(g, log) for g in plan(quick, run_dir)]
  rows = [r for g in groups for r in g["results"]]
  table = ratios(rows)
  for t in table:
    log(
      f"  {t['model']:16s} k={t['k']:<3d} {t['variant']:8s} {t['state']:8s} "
      f"{t['ms_per_step']:9.1f} ms/step {t['ratio_vs_pgd_at']:6.2f}x PGD-AT"
    )
  passes = []
  state = "trained" if run_dir else "random"
  for v in [variant(name, 5, state, run_dir or "") for name in VARIANTS]:
    p = count_passes(DIGITS, v, batches=2 if quick else 4)
    log(
      f"  passes {p['variant']:8s} {p['state']:8s} forward {p['forward']:5.2f} "
      f"backward {p['backward']:5.2f} per image"
    )
    passes.append(p)
  return {
    "machine": common.machine(),
    "rows": rows,
    "ratios": table,
    "passes": passes,
    "failed": [f for g in groups for f in g["failed"]],
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", required=True, help="The results JSON to write.")
  parser.add_argument(
    "--run_dir",
    default=None,
    help="A finished quick-start run: time the digits model in its state.",
  )
  parser.add_argument("--quick", action="store_true", help="Digits only, few repeats.")
  args = parser.parse_args(argv)
  common.keras.config.disable_interactive_logging()
  result = run(args.quick, lambda s: print(s, flush=True), args.run_dir)
  with open(args.output, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
  print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
