"""ImageNet input pipeline throughput, before and after, per worker (one run).

    python -m bench.imagenet_pipeline.imagenet_pipeline --out=bench/imagenet_pipeline/IMAGENET_PIPELINE.md

Synthetic ImageNet-shaped JPEGs (500x375, quality 90, smooth random fields
plus noise; their mean size is in the results) go through the real training
pipeline (`data.build_pipelines`: shuffle, keyed random-resized crop to
224 + flip, batch 256) with tf.data's thread pool limited to 1 and to 2
threads (the cores of this machine):

* before: decode the whole JPEG, then crop (the pipeline up to this change);
* after: `decode_and_crop_jpeg` (decodes only the crop);
* after, one of 2 workers: the `data.WorkerShard` pipeline of worker 0,
  which decodes only its half of every global batch. Under the previous
  multi-worker input (AutoShardPolicy.DATA) each worker ran the whole
  pipeline, so its global-batch rate was the single-pipeline rate.

Also writes how many CPU cores per GPU an IAAT ResNet-50 run needs: the GPU
rates are the anchors of ../shared/paper/ALGORITHM.md (one H200, WRN-32-10 on
CIFAR-10) scaled by the models' forward FLOPs (counted here from the conv
and dense layers), an estimate, not a measurement.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from iaat_tf import data, models
from iaat_tf.config import DataConfig, ModelConfig
from iaat_tf.data import augment, sources

H, W, SIZE, BATCH = 375, 500, 224, 256
# ../shared/paper/ALGORITHM.md: one H200, WRN-32-10, CIFAR-10 (img/s).
ANCHORS = {"their IAAT step (fp32/TF32)": 97.0, "ideal exact IAAT (bf16)": 870.0}


def jpegs(n: int, seed: int = 0) -> list:
  rng = np.random.RandomState(seed)
  out = []
  for _ in range(n):
    low = rng.rand(12, 16, 3).astype(np.float32)
    smooth = tf.image.resize(low[None], [H, W], method="bicubic")[0].numpy()
    image = np.clip(smooth * 200 + rng.randn(H, W, 3) * 12 + 20, 0, 255)
    out.append(tf.io.encode_jpeg(image.astype(np.uint8), quality=90).numpy())
  return out


def source(encoded: list, after: bool) -> sources.Source:
  train = tf.data.Dataset.from_tensor_slices(
    (tf.constant(encoded), tf.zeros(len(encoded), tf.int64))
  )
  decode = lambda raw: tf.ensure_shape(tf.io.decode_jpeg(raw, channels=3), [None, None, 3])
  transform = (
    (lambda raw, seed: augment.imagenet_train_crop_encoded(raw, SIZE, seed))
    if after
    else (lambda raw, seed: augment.imagenet_train_crop(decode(raw), SIZE, seed))
  )
  return sources.Source(
    name="imagenet_like",
    train=train,
    test=train.take(1),
    num_classes=1000,
    image_shape=(SIZE, SIZE, 3),
    num_train=len(encoded),
    num_test=1,
    train_transform=transform,
    eval_transform=lambda raw: augment.imagenet_eval_crop(decode(raw), SIZE),
    cache=False,
    shuffle_buffer=len(encoded),
  )


def images_per_second(src, threads: int, shard, seconds: float, batch: int) -> float:
  _, epochs = data.build_pipelines(src, DataConfig(batch_size=batch, seed=0))
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  ds = epochs(0, 1, shard).repeat().with_options(options)  # One epoch, reread.
  it = iter(ds)
  next(it)  # Warm up.
  images, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    images += int(next(it)[0]["image"].shape[0])
  return images / (time.perf_counter() - start)


def shard_gain(rows, threads: int) -> float:
  """Worker-0-of-2 global-batch rate / whole-pipeline rate (after)."""
  mine = {l.split(":")[0]: r for t, l, r in rows if t == threads}
  return mine["after, worker 0 of 2 (global-batch rate)"] / mine["after"]


def forward_flops(model) -> float:
  """2 x multiply-adds of the conv and dense layers, per image."""
  total = 0.0
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if isinstance(layer, tf.keras.layers.Conv2D):
      kh, kw, cin, cout = layer.kernel.shape
      oh, ow = layer.output.shape[1:3]
      total += 2.0 * kh * kw * cin * cout * oh * ow
    elif isinstance(layer, tf.keras.layers.Dense):
      total += 2.0 * np.prod(layer.kernel.shape)
  return total


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=512)
  parser.add_argument("--seconds", type=float, default=20.0)
  parser.add_argument("--batch", type=int, default=BATCH)
  parser.add_argument("--out", default="bench/imagenet_pipeline/IMAGENET_PIPELINE.md")
  args = parser.parse_args()
  encoded = jpegs(args.images)
  kb = np.mean([len(e) for e in encoded]) / 1024
  rows = []
  for threads in (1, 2):
    for label, after, shard, scale in [
      ("before: whole decode + crop", False, None, 1),
      ("after: decode_and_crop_jpeg", True, None, 1),
      (
        "after, worker 0 of 2 (global-batch rate)",
        True,
        data.WorkerShard(2, 0, args.batch // 2),
        2,
      ),
    ]:
      rate = images_per_second(source(encoded, after), threads, shard, args.seconds, args.batch)
      rows.append((threads, label, rate * scale))
      print(f"{threads} thread(s), {label}: {rate * scale:.0f} images/s", flush=True)

  flops = {}
  for name, shape, classes in [
    ("authors_wrn", (32, 32, 3), 10),
    ("resnet50", (SIZE, SIZE, 3), 1000),
  ]:
    net = models.build_classifier(
      ModelConfig(name=name, depth=32),
      shape,
      classes,
      "imagenet2012" if name == "resnet50" else "cifar10",
    )
    flops[name] = forward_flops(net)
  ratio = flops["authors_wrn"] / flops["resnet50"]
  per_core = [r for t, l, r in rows if t == 1 and l.startswith("after: ")][0]
  before_core = [r for t, l, r in rows if t == 1 and l.startswith("before")][0]
  lines = [
    "# ImageNet input pipeline (bench/imagenet_pipeline/imagenet_pipeline.py)",
    "",
    f"One run, {time.strftime('%Y-%m-%d')}, this machine (2 CPU cores, no GPU). "
    f"{args.images} synthetic {W}x{H} JPEGs (mean {kb:.0f} KB), crop to {SIZE}, "
    f"batch {args.batch}, {args.seconds:.0f} s per row after one warm-up batch.",
    "",
    "| tf.data threads | pipeline | images/s of global batches |",
    "| ---: | --- | ---: |",
    *[f"| {t} | {l} | {r:.0f} |" for t, l, r in rows],
    "",
    f"- decode_and_crop_jpeg vs whole decode, 1 thread: {per_core / before_core:.2f}x.",
    "- Per worker, 2 workers: each decodes only its half of every global "
    "batch, so one worker keeps up with "
    + " and ".join(f"{shard_gain(rows, t):.2f}x ({t} thread{'s' * (t > 1)})" for t in (1, 2))
    + " the global-batch rate it sustained when every worker ran the whole "
    "pipeline (AutoShardPolicy.DATA).",
    "",
    "## CPU cores per GPU for IAAT ResNet-50 (an estimate)",
    "",
    f"Forward FLOPs counted here: WRN-32-10 (authors') at 32x32 "
    f"{flops['authors_wrn'] / 1e9:.2f} G, ResNet-50 at {SIZE}x{SIZE} "
    f"{flops['resnet50'] / 1e9:.2f} G per image, so a ResNet-50 image costs "
    f"{1 / ratio:.2f}x a WRN-32-10 one. Scaling the ALGORITHM.md GPU anchors "
    f"(one H200) by {ratio:.2f} and dividing by this pipeline's 1-thread rate "
    f"({per_core:.0f} images/s per core; a server core is likely faster):",
    "",
    "| GPU anchor (WRN-32-10 img/s) | ResNet-50 img/s per GPU | cores per GPU, after | cores per GPU, before |",
    "| --- | ---: | ---: | ---: |",
  ]
  for name, rate in ANCHORS.items():
    gpu = rate * ratio
    lines.append(
      f"| {name}: {rate:.0f} | {gpu:.0f} | {gpu / per_core:.1f} | {gpu / before_core:.1f} |"
    )
  lines.append("")
  with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
