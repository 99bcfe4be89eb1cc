"""Step time of fast adversarial training vs standard training (one run).

    python -m bench.fast_at.fast_at --out=bench/fast_at/FAST_AT.md

Times the train step (round-robin, median of repeats; bench/common.py) of
standard (clean) training, PGD-AT at k = 10 and k = 5, FGSM-RS
(`--train_attack=fgsm_rs`: one step from a random start) and the cheap IAAT
rule on FGSM-RS (its outcome judged by an inference-mode pass, the default,
or read from the training forward pass, `--cheap_signal=train_forward`), on
the quick start's small CNN (8x8x1) and a WRN-16-2 at 32x32x3, and writes
each one's cost relative to standard training.
"""

import argparse
import time


from bench import common
from bench.common import Group, Variant
from bench.step_time import DIGITS, WRN16

VARIANTS = [
  Variant("standard", 1),
  Variant("pgd_at", 10),
  Variant("pgd_at", 5),
  Variant("pgd_at", 1, attack="fgsm_rs", name="FGSM-RS"),
  Variant("iaat_cheap", 1, attack="fgsm_rs", name="IAAT-cheap on FGSM-RS"),
  Variant(
    "iaat_cheap",
    1,
    attack="fgsm_rs",
    name="IAAT-cheap on FGSM-RS, train_forward",
    method_options=(("cheap_signal", "train_forward"),),
  ),
]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="bench/fast_at/FAST_AT.md")
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  groups = [
    Group(DIGITS, VARIANTS, repeats=args.repeats, repeat_seconds=0.5),
    Group(WRN16, VARIANTS, repeats=max(3, args.repeats - 2), repeat_seconds=1.5),
  ]
  lines = [
    "# Fast adversarial training: step time vs standard training",
    "",
    f"`python -m bench.fast_at.fast_at` ({time.strftime('%Y-%m-%d')}, one run on this "
    "machine: 2 CPU cores, no GPU). Median train-step time over round-robin "
    "repeats; ratio = step time / standard (clean) training's.",
    "",
  ]
  for group in groups:
    result = common.time_group(group, print)
    rows = {r["label"]: r for r in result["results"]}
    standard = rows["standard k=1"]["step_seconds_median"]
    lines += [
      f"## {group.spec.key} (batch {group.spec.batch})",
      "",
      "| method | ms/step | x standard |",
      "| --- | ---: | ---: |",
    ]
    for r in result["results"]:
      lines.append(
        f"| {r['label']} | {r['step_seconds_median'] * 1000:.1f} | "
        f"{r['step_seconds_median'] / standard:.2f} |"
      )
    lines.append("")
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
