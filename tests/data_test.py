"""Input pipelines: structure, stable indices, array and tfds sources."""


import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from iaat_tf import data, example_lookup
from iaat_tf.config import DataConfig


def _collect(ds):
  images, index, labels = [], [], []
  for x, y in ds.as_numpy_iterator():
    images.append(x["image"]); index.append(x["index"]); labels.append(y)
  return np.concatenate(images), np.concatenate(index), np.concatenate(labels)


def test_digits_pipeline_yields_keyed_unit_range_batches():
  d = data.load_datasets(DataConfig(dataset="digits", batch_size=100))
  assert d.info.image_shape == (8, 8, 1) and d.info.num_classes == 10
  assert d.info.num_train + d.info.num_test == 1797
  x, y = next(iter(d.train))
  assert x["image"].dtype == tf.float32 and x["index"].dtype == tf.int64
  assert x["image"].shape == (100, 8, 8, 1) and y.shape == (100,)
  assert 0.0 <= float(tf.reduce_min(x["image"])) and float(tf.reduce_max(x["image"])) <= 1.0


def test_index_is_stable_across_shuffled_epochs():
  cfg = DataConfig(dataset="digits", batch_size=64, seed=1)
  d = data.load_datasets(cfg)
  im1, idx1, y1 = _collect(d.train_epochs(0, 1))
  im2, idx2, y2 = _collect(d.train_epochs(1, 2))
  assert not np.array_equal(idx1, idx2)  # Reshuffled each epoch...
  assert len(np.unique(idx1)) == len(idx1)  # ...each id at most once...
  assert len(idx1) == (d.info.num_train // 64) * 64  # ...full batches only.
  common = np.intersect1d(idx1, idx2)
  a = {i: k for k, i in enumerate(idx1)}
  b = {i: k for k, i in enumerate(idx2)}
  for i in common[:200]:  # ...and an id always names the same example.
    np.testing.assert_array_equal(im1[a[i]], im2[b[i]])
    assert y1[a[i]] == y2[b[i]]
  labels = example_lookup.read_train_labels(cfg)
  np.testing.assert_array_equal(labels[idx1], y1)
  images, lab = example_lookup.train_examples_by_index(cfg, idx1[:5])
  np.testing.assert_array_equal(images, im1[:5])
  np.testing.assert_array_equal(lab, y1[:5])


def test_epoch_order_depends_only_on_seed_and_epoch():
  cfg = DataConfig(dataset="digits", batch_size=64, seed=3)
  d = data.load_datasets(cfg)
  _, both, _ = _collect(d.train_epochs(0, 2))
  _, first, _ = _collect(d.train_epochs(0, 1))
  _, second, _ = _collect(d.train_epochs(1, 2))  # As after a resume at epoch 1.
  np.testing.assert_array_equal(both, np.concatenate([first, second]))
  _, again, _ = _collect(data.load_datasets(cfg).train_epochs(1, 2))
  np.testing.assert_array_equal(second, again)
  _, other_seed, _ = _collect(data.load_datasets(
      DataConfig(dataset="digits", batch_size=64, seed=4)).train_epochs(1, 2))
  assert not np.array_equal(second, other_seed)


def test_test_split_is_unshuffled_and_complete():
  d = data.load_datasets(DataConfig(dataset="digits", eval_batch_size=100))
  _, idx, _ = _collect(d.test)
  np.testing.assert_array_equal(idx, np.arange(d.info.num_test))


def test_augmentation_keeps_shape_range_and_changes_pixels():
  cfg = DataConfig(dataset="digits", batch_size=128, augment=True)
  d = data.load_datasets(cfg)
  im, idx, _ = _collect(d.train)
  assert im.shape[1:] == (8, 8, 1) and im.min() >= 0 and im.max() <= 1
  originals, _ = example_lookup.train_examples_by_index(cfg, idx[:64])
  assert not np.allclose(im[:64], originals)


def _write_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def test_npz_with_and_without_test_split(tmp_path):
  rng = np.random.RandomState(0)
  x = (rng.rand(30, 5, 5, 3) * 255).astype(np.uint8)
  y = rng.randint(0, 4, 30)
  path = _write_npz(tmp_path / "a.npz", x=x, y=y)
  d = data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=8,
                                    holdout_fraction=0.2))
  assert d.info.num_train == 24 and d.info.num_test == 6
  assert d.info.image_shape == (5, 5, 3)
  path = _write_npz(tmp_path / "b.npz", x=x[..., 0] / 255.0, y=y,
                    x_test=x[:7, ..., 0] / 255.0, y_test=y[:7])
  d = data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=8))
  assert d.info.num_train == 30 and d.info.num_test == 7
  assert d.info.image_shape == (5, 5, 1)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros([10, 4, 4, 3]), y=np.zeros([9], int)), "one label per image"),
    (dict(x=np.zeros([10, 4]), y=np.zeros([10], int)), "must have shape"),
    (dict(x=np.zeros([10, 4, 4, 2]), y=np.zeros([10], int)), "must have shape"),
    (dict(x=np.full([10, 4, 4, 1], 7.0), y=np.zeros([10], int)), "float in [0, 1]"),
    (dict(x=np.zeros([10, 4, 4, 1]), y=np.zeros([10])), "integer class ids"),
    (dict(image=np.zeros([10, 4, 4, 1]), y=np.zeros([10], int)), "missing array 'x'"),
])
def test_npz_errors_are_clear(tmp_path, arrays, message):
  path = _write_npz(tmp_path / "bad.npz", **arrays)
  with pytest.raises(data.DataError, match=None) as err:
    data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=2))
  assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_npz_and_data_dir(tmp_path):
  with pytest.raises(data.DataError, match="does not exist"):
    data.load_datasets(DataConfig(dataset="npz", npz_path=str(tmp_path / "no.npz")))
  with pytest.raises(data.DataError, match="does not exist"):
    data.load_datasets(DataConfig(dataset="cifar10", data_dir=str(tmp_path / "no")))
  with pytest.raises(data.DataError, match="could not load tfds dataset 'cifar10'"):
    data.load_datasets(DataConfig(dataset="cifar10", data_dir=str(tmp_path)))


@pytest.mark.parametrize("name, shape, classes", [
    ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100),
    ("mnist", (28, 28, 1), 10)])
def test_tfds_sources_under_mock_data(tmp_path, name, shape, classes):
  with tfds.testing.mock_data(num_examples=20):
    cfg = DataConfig(dataset=name, data_dir=str(tmp_path), batch_size=4,
                     augment=True)
    d = data.load_datasets(cfg)
    assert d.info.image_shape == shape and d.info.num_classes == classes
    assert d.info.num_train == 20
    _, idx, y = _collect(d.train)
    assert sorted(idx) == list(range(20))
    np.testing.assert_array_equal(example_lookup.read_train_labels(cfg)[idx], y)
    plain = DataConfig(dataset=name, data_dir=str(tmp_path), batch_size=4)
    im, idx, y = _collect(data.load_datasets(plain).train)
    images, labels = example_lookup.train_examples_by_index(plain, idx[:3])
    np.testing.assert_allclose(images, im[:3], atol=1e-6)
    np.testing.assert_array_equal(labels, y[:3])


def test_imagenet_preprocessing_under_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    d = data.load_datasets(DataConfig(dataset="imagenet2012", data_dir=str(tmp_path),
                                      batch_size=2, eval_batch_size=3, image_size=48))
    x, _ = next(iter(d.train))
    assert x["image"].shape == (2, 48, 48, 3) and d.info.num_classes == 1000
    x, _ = next(iter(d.test))
    assert x["image"].shape == (3, 48, 48, 3)
    assert 0.0 <= float(tf.reduce_min(x["image"])) <= float(tf.reduce_max(x["image"])) <= 1.0
