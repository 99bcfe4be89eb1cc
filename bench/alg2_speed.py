"""Algorithm 2's probe options: train-step time relative to PGD-AT at the same k.

Times PGD-AT, exact Algorithm 2 and its probe options (MethodConfig
probe_*: fewer probe steps, both probes batched, per-example early stop,
probing only the examples whose outcome is used, and the `--alg2_preset=fast`
combination) round-robin in one process, so the ratios come from one run.

The early-stopping and skipping options do less work when examples are
decided early, so they are timed twice: on a fresh model with random labels
("random": most examples are misclassified, the favourable case) and in the
"robust" state (every example clean-correct, no attack can succeed: every
probe runs all its steps on the whole batch, the worst case). Their real cost
in training lies in between. (In the robust state `probe_only_needed` also skips the probe at
`stored`, since no +gamma probe succeeds: the variant with only fewer probe
steps, no early stop, is the data-independent upper bound.) With `--alg2_run_dir=RUN` (a finished quick-start run, e.g. from
python -m experiments.alg2_fidelity.alg2_fidelity) it also times the "trained" state: that run's
weights, eps table and training data with the learning rate at 0, i.e. the
decisions Algorithm 2 really faces at the end of training.
"""

import math
from typing import List, Optional

from bench import common
from bench.common import Group, ModelSpec, Variant
from iaat_tf.config import ModelConfig, alg2_preset

TARGET = 1.6  # Algorithm 2 / PGD-AT step time (the probe options' target, bench/RESULTS.md).
RATIO = 0.25  # bench.common.build_trainer's attack step ratio.


def variants(k: int, full: bool = True) -> List[Variant]:
  p = max(1, round(k / 3))
  fast = tuple(sorted(alg2_preset("fast", k, RATIO).items()))
  out = [
    Variant("pgd_at", k),
    Variant("iaat", k, name="alg2 exact"),
    Variant("iaat", k, method_options=fast, name="alg2 fast"),
  ]
  if full:
    out += [
      Variant("iaat", k, method_options=(("probe_steps", p),), name=f"alg2 probe_steps={p}"),
      Variant("iaat", k, method_options=(("probe_batched", True),), name="alg2 batched"),
      Variant(
        "iaat",
        k,
        method_options=(("probe_batched", True), ("probe_steps", p)),
        name=f"alg2 batched probe_steps={p}",
      ),
      Variant(
        "iaat", k, method_options=(("probe_early_stop", "batch"),), name="alg2 early_stop=batch"
      ),
      Variant(
        "iaat", k, method_options=(("probe_early_stop", "example"),), name="alg2 early_stop=example"
      ),
      Variant("iaat", k, method_options=(("probe_only_needed", True),), name="alg2 only_needed"),
    ]
  out += [
    Variant("pgd_at", k, state="robust", name="pgd_at robust"),
    Variant("iaat", k, state="robust", name="alg2 exact robust"),
    Variant("iaat", k, method_options=fast, state="robust", name="alg2 fast robust"),
  ]
  if full:
    out += [
      Variant(
        "iaat",
        k,
        method_options=(("probe_early_stop", "example"),),
        state="robust",
        name="alg2 early_stop=example robust",
      )
    ]
  return out


def early_stop_options(k: int, p: int, ratio: float = RATIO) -> tuple:
  """Probes of p steps covering the attack's distance, early stop, only needed."""
  return tuple(
    sorted(
      {
        "probe_steps": p,
        "probe_step_ratio": ratio * k / p,
        "probe_early_stop": "example",
        "probe_only_needed": True,
      }.items()
    )
  )


def trained_variants(k: int, run_dir: str) -> List[Variant]:
  """End-of-training decisions of a quick-start run (real data, real radii)."""
  kw = dict(state="trained", run_dir=run_dir)
  out = [
    Variant("pgd_at", k, name="pgd_at trained", **kw),
    Variant("iaat", k, name="alg2 exact trained", **kw),
  ]
  for p in sorted({max(1, round(k / 3)), math.ceil(k / 2), k}):
    out.append(
      Variant(
        "iaat",
        k,
        method_options=early_stop_options(k, p, 0.25),
        name=f"alg2 p={p} early_stop trained",
        **kw,
      )
    )
  return out


def plan(quick: bool, run_dir: Optional[str] = None) -> List[Group]:
  digits = ModelSpec("small_cnn_8x8", ModelConfig("small_cnn"), (8, 8, 1), 64, "digits")
  trained = []
  if run_dir:
    trained = [
      Group(
        digits,
        trained_variants(k, run_dir),
        repeats=3 if quick else 7,
        repeat_seconds=0.2 if quick else 0.5,
        section="alg2",
      )
      for k in ((5,) if quick else (5, 10))
    ]
  if quick:
    return [
      Group(digits, variants(5, full=False), repeats=3, repeat_seconds=0.2, section="alg2")
    ] + trained
  cnn32 = ModelSpec("small_cnn_32x32", ModelConfig("small_cnn"), (32, 32, 3), 128, "cifar10")
  wrn = ModelSpec(
    "wrn_16_2_32x32", ModelConfig("wide_resnet", depth=16, width=2), (32, 32, 3), 32, "cifar10"
  )
  return trained + [
    Group(digits, variants(5), repeats=5, repeat_seconds=0.5, section="alg2"),
    Group(cnn32, variants(10), repeats=3, repeat_seconds=1.0, max_steps=3, section="alg2"),
    Group(wrn, variants(10), repeats=3, repeat_seconds=1.0, max_steps=2, section="alg2"),
  ]


def ratios(rows: List[dict]) -> List[dict]:
  """Each Algorithm 2 variant's step time / PGD-AT's (same model, k, state)."""
  out = []
  for r in rows:
    if r.get("section") != "alg2" or r["method"] != "iaat":
      continue
    pgd = next(
      (
        p
        for p in rows
        if p.get("section") == "alg2"
        and p["method"] == "pgd_at"
        and p["model"] == r["model"]
        and p["k"] == r["k"]
        and p["state"] == r["state"]
        and p["batch"] == r["batch"]
      ),
      None,
    )
    if pgd is None:
      continue
    value = r["step_seconds_median"] / pgd["step_seconds_median"]
    preset = alg2_preset("fast", r["k"], RATIO)
    is_preset = set(r["method_options"]) == set(preset) and all(
      abs(r["method_options"][key] - v) < 1e-6
      if isinstance(v, float)
      else r["method_options"][key] == v
      for key, v in preset.items()
    )
    out.append(
      {
        "model": r["model"],
        "k": r["k"],
        "variant": r["name"],
        "is_fast_preset": is_preset,
        "state": r["state"],
        "options": r["method_options"],
        "value": value,
        "target": f"<= {TARGET}",
        "ok": value <= TARGET,
      }
    )
  return out


def report_lines(rows: List[dict]) -> List[str]:
  table = ratios(rows)
  if not table:
    return []
  lines = [
    "## Algorithm 2 vs PGD-AT (probe options)",
    "",
    "Step time of Algorithm 2 / PGD-AT at the same k, one round-robin run per "
    "model. `trained`: a finished quick-start run's weights, eps table and "
    "data at learning rate 0 (the decisions of real training); `random`: fresh "
    "model, random labels (most examples misclassified: skipping helps most); "
    "`robust`: no attack can succeed (no early stop; see the module docstring). "
    "(preset) marks `--alg2_preset=fast`. "
    f"Target <= {TARGET}. Fidelity of the fast preset: experiments/alg2_fidelity/ALG2_FIDELITY.md. "
    "`probe_steps=N` alone (no early stop, no skipping) is the fast preset's "
    "data-independent upper bound. Groups whose steps take seconds were timed with "
    "one step per repeat on a shared machine: expect +-15% there (a ratio below 1 "
    "is noise: the probes are not free).",
    "",
    "| model | k | variant | state | step / PGD-AT | ms/step | target met |",
    "|---|---:|---|---|---:|---:|---|",
  ]
  for t in table:
    row = next(
      r
      for r in rows
      if r.get("section") == "alg2"
      and r["model"] == t["model"]
      and r["name"] == t["variant"]
      and r["k"] == t["k"]
    )
    name = t["variant"] + (" (preset)" if t["is_fast_preset"] else "")
    lines.append(
      f"| {t['model']} | {t['k']} | {name} | {t['state']} | "
      f"{t['value']:.2f} | {row['step_seconds_median'] * 1e3:.1f} | "
      f"{'yes' if t['ok'] else '**no**'} |"
    )
  return lines + [""]


def run(quick: bool, log, run_dir: Optional[str] = None) -> dict:
  groups = [common.time_group(g, log) for g in plan(quick, run_dir)]
  rows = [r for g in groups for r in g["results"]]
  table = ratios(rows)
  for t in table:
    log(
      f"  {t['model']:16s} k={t['k']:<3d} {t['variant']:34s} {t['state']:7s} "
      f"{t['value']:6.2f}x PGD-AT"
    )
  return {"groups": groups, "rows": rows, "ratios": table}


if __name__ == "__main__":
  import argparse  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
  parser.add_argument(
    "--run_dir", default=None, help="a finished quick-start run: also time the trained state"
  )
  args = parser.parse_args()
  result = run(args.quick, lambda s: print(s, flush=True), args.run_dir)
