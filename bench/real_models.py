"""The shipped flagfiles' models at their real input shapes, per method.

WRN-32-10 at 32x32x3 (flags/cifar10_wrn_*.flags, k=10) and ResNet-50 at
224x224x3 (flags/imagenet_resnet50_iaat.flags, k=5), on random in-memory
batches: on a CPU a small batch (the step time of a real batch scales about
linearly), with a GPU the flagfile's batch (256 and 512; `--real_batch`
overrides). Per method and per precision / XLA mode it reports images/s, the
step time relative to a clean (`standard`) step, relative to the ideal
PGD-AT cost of k+1 forward-backward passes per adversarial example
(step / ((k+1) x clean step)), and the peak host RSS (and device memory on a
GPU) while building and warming up each configuration.
"""

from typing import List, Optional

from bench import common
from bench.common import Group, ModelSpec, Variant, find
from iaat_tf.config import ModelConfig, alg2_preset

RATIO = 0.25  # bench.common.build_trainer's attack step ratio.


def specs(gpu: bool, batch: Optional[int]) -> List[tuple]:
  """(ModelSpec, k) of the shipped flagfiles' models."""
  wrn = ModelSpec(
    "wrn_32_10_32x32",
    ModelConfig("wide_resnet", depth=32, width=10),
    (32, 32, 3),
    batch or (256 if gpu else 4),
    "cifar10",
  )
  resnet = ModelSpec(
    "resnet50_224x224",
    ModelConfig("resnet50"),
    (224, 224, 3),
    batch or (512 if gpu else 2),
    "imagenet2012",
    num_classes=1000,
  )
  return [(wrn, 10), (resnet, 5)]


def variants(k: int, quick: bool) -> List[Variant]:
  fast = tuple(sorted(alg2_preset("fast", k, RATIO).items()))
  out = [
    Variant("standard", k),
    Variant("pgd_at", k),
    Variant("iaat", k),
    Variant("iaat", k, method_options=fast, name="iaat alg2-fast"),
    Variant("iaat_cheap", k),
  ]
  if quick:
    return out
  return out + [
    Variant(
      "iaat_cheap",
      k,
      method_options=(("cheap_signal", "train_forward"),),
      name="iaat_cheap train_forward",
    ),
    Variant("pgd_at", k, precision="mixed_bfloat16"),
    Variant("pgd_at", k, precision="mixed_float16"),
    Variant("pgd_at", k, jit="attack"),
    Variant("pgd_at", k, jit="step"),
    Variant("standard", k, jit="step"),
  ]


def plan(
  quick: bool, gpu: bool = False, batch: Optional[int] = None, k_override: Optional[int] = None
) -> List[Group]:
  groups = []
  for spec, k in specs(gpu, batch):
    if quick:
      if spec.model.name != "wide_resnet":
        continue
      spec = ModelSpec(spec.key, spec.model, spec.shape, batch or 2, spec.dataset)
      k = k_override or 2
    else:
      k = k_override or k
    groups.append(
      Group(
        spec,
        variants(k, quick),
        repeats=1 if quick else 2,
        repeat_seconds=0.0,
        max_steps=1,
        section="real_models",
      )
    )
  return groups


def ratios(rows: List[dict]) -> List[dict]:
  out = []
  for r in rows:
    if r.get("section") != "real_models":
      continue
    clean = find(rows, r["model"], "standard", r["k"])
    if clean is None:
      continue
    c = clean["step_seconds_median"]
    out.append(
      {
        "model": r["model"],
        "batch": r["batch"],
        "k": r["k"],
        "label": r["label"],
        "images_per_second": r["images_per_second"],
        "ms_per_step": r["step_seconds_median"] * 1e3,
        "x_clean": r["step_seconds_median"] / c,
        "x_ideal": r["step_seconds_median"] / ((r["k"] + 1) * c),
        "peak_rss_mb": r.get("warmup_peak_rss_mb"),
        "device_peak_mb": (r.get("warmup_device_memory") or {}).get("peak_mb"),
        "device": (r.get("warmup_device_memory") or {}).get("device"),
      }
    )
  return out


def report_lines(rows: List[dict], failed: List[dict]) -> List[str]:
  table = ratios(rows)
  if not table and not failed:
    return []
  lines = [
    "## Shipped models at real input shapes",
    "",
    "Random in-memory batches (small batches on a CPU). `x clean`: step time / "
    "a `standard` step; `x ideal`: step time / ((k+1) x a clean step), the cost "
    "of k+1 forward-backward passes per adversarial example. Peak RSS and "
    "TensorFlow's allocator peak (GPU:0 with a GPU, else CPU:0: tensors only): "
    "while building and warming up the configuration.",
    "",
    "| model | batch | k | variant | ms/step | images/s | x clean | x ideal | "
    "peak RSS MB | TF allocator peak MB |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
  ]
  for t in table:
    lines.append(
      f"| {t['model']} | {t['batch']} | {t['k']} | {t['label']} | "
      f"{t['ms_per_step']:.0f} | {t['images_per_second']:.2f} | "
      f"{t['x_clean']:.2f} | {t['x_ideal']:.2f} | "
      f"{common.fmt(t['peak_rss_mb'], 0)} | {common.fmt(t['device_peak_mb'], 0)} |"
    )
  for f in failed:
    lines.append(f"| {f['model']} | | | {f['label']} | failed: {f['error']} | | | | | |")
  return lines + [""]


def run(quick: bool, log, batch: Optional[int] = None, k: Optional[int] = None) -> dict:
  gpu = bool(common.gpu_names())
  groups = [common.time_group(g, log) for g in plan(quick, gpu, batch, k)]
  rows = [r for g in groups for r in g["results"]]
  return {
    "groups": groups,
    "rows": rows,
    "ratios": ratios(rows),
    "failed": [f for g in groups for f in g["failed"]],
  }
