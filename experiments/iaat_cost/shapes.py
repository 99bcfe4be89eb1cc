"""A second task for the cost experiment: 16x16 drawn shapes, 10 classes, offline.

Every image is one of ten outline or filled shapes (square, hollow square,
disc, ring, plus, X, horizontal bar, vertical bar, triangle, two dots) at a
random position (+-2 pixels), size and brightness, on a noisy background
with a faint distractor stroke. It is not digits: a task IAAT's variants
were not tuned on. Some pairs (square / hollow square, disc / ring, plus /
bars) differ in few pixels, so one radius cannot suit every example.

  python -m experiments.iaat_cost.shapes OUT.npz     # writes x, y, x_test, y_test

The arrays are a pure function of the seed (numpy's RandomState).
"""

import argparse

import numpy as np

SIZE, CLASSES = 16, 10
NAMES = (
  "square",
  "hollow square",
  "disc",
  "ring",
  "plus",
  "x",
  "horizontal bar",
  "vertical bar",
  "triangle",
  "two dots",
)


def _shape(label: int, cy: float, cx: float, r: float) -> np.ndarray:
  yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
  dy, dx = yy - cy, xx - cx
  box = np.maximum(np.abs(dy), np.abs(dx))
  dist = np.sqrt(dy**2 + dx**2)
  if label == 0:
    return box <= r
  if label == 1:
    return (box <= r) & (box > r - 1.2)
  if label == 2:
    return dist <= r
  if label == 3:
    return (dist <= r) & (dist > r - 1.3)
  if label == 4:
    return ((np.abs(dy) <= 0.6) & (np.abs(dx) <= r)) | ((np.abs(dx) <= 0.6) & (np.abs(dy) <= r))
  if label == 5:
    return (np.abs(np.abs(dy) - np.abs(dx)) <= 0.7) & (box <= r)
  if label == 6:
    return (np.abs(dy) <= 1.0) & (np.abs(dx) <= r)
  if label == 7:
    return (np.abs(dx) <= 1.0) & (np.abs(dy) <= r)
  if label == 8:
    return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
  return ((dy**2 + (dx - r * 0.7) ** 2) <= 2.0) | ((dy**2 + (dx + r * 0.7) ** 2) <= 2.0)


def make(n: int, seed: int):
  rng = np.random.RandomState(seed)
  y = rng.randint(0, CLASSES, n).astype(np.int64)
  x = np.empty((n, SIZE, SIZE, 1), np.float32)
  for i, label in enumerate(y):
    cy, cx = SIZE / 2 - 0.5 + rng.uniform(-2, 2, 2)
    r = rng.uniform(3.0, 5.0)
    brightness = rng.uniform(0.45, 0.9)
    image = rng.uniform(0.0, 0.25, (SIZE, SIZE)).astype(np.float32)
    # A faint distractor: a short line somewhere.
    a, b = rng.randint(0, SIZE, 2)
    if rng.rand() < 0.5:
      image[a, max(0, b - 3) : b + 3] += 0.2
    else:
      image[max(0, a - 3) : a + 3, b] += 0.2
    image = np.where(_shape(int(label), cy, cx, r), brightness, image)
    x[i, :, :, 0] = np.clip(image, 0.0, 1.0)
  return x, y


def write(path: str, train: int = 2000, test: int = 400, seed: int = 0) -> str:
  x, y = make(train, seed)
  x_test, y_test = make(test, seed + 1)
  np.savez_compressed(path, x=x, y=y, x_test=x_test, y_test=y_test, num_classes=np.int64(CLASSES))
  return path


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out", help="the .npz file to write (x, y, x_test, y_test)")
  print(write(parser.parse_args().out))
