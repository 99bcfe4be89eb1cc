"""The ImageNet input path: crops decoded from the JPEG alone, and per-worker
pipelines cut before decoding that reassemble into the global batches."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from iaat_tf import data
from iaat_tf.config import DataConfig
from iaat_tf.data import augment


def _jpeg(rng, h, w):
  return tf.io.encode_jpeg((rng.rand(h, w, 3) * 255).astype(np.uint8), quality=90)


def test_the_crop_decoded_from_the_jpeg_equals_the_crop_of_the_whole_decode():
  """Same box (shape from the header, keyed seed); pixels equal except, at
  times, the crop's first or last column (chroma upsampled at its edge)."""
  rng = np.random.RandomState(0)
  edge_only = 0
  for k in range(6):
    encoded = _jpeg(rng, rng.randint(150, 400), rng.randint(150, 400))
    seed = tf.constant([k, 3], tf.int64)
    box_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    whole = tf.io.decode_jpeg(encoded, channels=3)
    begin, size = augment._random_box(tf.shape(whole), box_seed)  # pylint: disable=protected-access
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    cropped = tf.image.decode_and_crop_jpeg(encoded, window, channels=3).numpy()
    reference = tf.slice(whole, begin, size).numpy()
    np.testing.assert_array_equal(cropped[:, 1:-1], reference[:, 1:-1])
    edge_only += int(not np.array_equal(cropped, reference))
    out = augment.imagenet_train_crop_encoded(encoded, 64, seed)
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(  # Keyed: the same seed, the same crop.
      out.numpy(), augment.imagenet_train_crop_encoded(encoded, 64, seed).numpy()
    )
    np.testing.assert_allclose(
      out.numpy(), augment.imagenet_train_crop(whole, 64, seed).numpy(), atol=0.2
    )  # Only edge columns may differ.
  assert edge_only < 6
  # A PNG takes the whole-decode path.
  png = tf.io.encode_png((rng.rand(50, 60, 3) * 255).astype(np.uint8))
  seed = tf.constant([1, 2], tf.int64)
  np.testing.assert_array_equal(
    augment.imagenet_train_crop_encoded(png, 16, seed).numpy(),
    augment.imagenet_train_crop(tf.io.decode_png(png, channels=3), 16, seed).numpy(),
  )


@pytest.mark.slow
@pytest.mark.parametrize("workers,replicas_per_worker", [(2, 1), (2, 2)])
def test_worker_shards_reassemble_the_global_batches(tmp_path, workers, replicas_per_worker):
  """Each worker's pipeline holds only its replicas' slices of every global
  batch (ids, crops and flips as in the global pipeline), over two epochs."""
  with tfds.testing.mock_data(num_examples=24):
    config = DataConfig(
      dataset="imagenet2012", data_dir=str(tmp_path), batch_size=8, image_size=24, seed=5
    )
    d = data.load_datasets(config)
    whole = list(d.train_epochs(0, 2))
    replica_batch = 8 // (workers * replicas_per_worker)
    per_worker = [
      list(d.train_epochs(0, 2, data.WorkerShard(workers, w, replica_batch)))
      for w in range(workers)
    ]
  assert len(whole) == 2 * (24 // 8)
  for step, (x, y) in enumerate(whole):
    parts = [
      per_worker[w][step * replicas_per_worker + j]
      for w in range(workers)
      for j in range(replicas_per_worker)
    ]
    assert all(p[0]["image"].shape[0] == replica_batch for p in parts)
    np.testing.assert_array_equal(np.concatenate([p[0]["index"] for p in parts]), x["index"])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    np.testing.assert_array_equal(np.concatenate([p[0]["image"] for p in parts]), x["image"])


def test_a_batch_that_does_not_split_over_the_workers_is_refused(tmp_path):
  with tfds.testing.mock_data(num_examples=12):
    d = data.load_datasets(
      DataConfig(dataset="imagenet2012", data_dir=str(tmp_path), batch_size=6, image_size=16)
    )
    with pytest.raises(data.DataError, match="does not split into 4 worker"):
      d.train_epochs(0, 1, data.WorkerShard(4, 0, 1))
