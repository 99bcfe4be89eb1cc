"""Input pipelines: structure, stable indices, array, synthetic and tfds sources."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from iaat_tf import config, data, validation
from iaat_tf.data import augment, sources
from iaat_tf.reports import example_lookup
from iaat_tf.config import DataConfig


def _collect(ds):
  images, index, labels = [], [], []
  for x, y in ds.as_numpy_iterator():
    images.append(x["image"])
    index.append(x["index"])
    labels.append(y)
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
  _, other_seed, _ = _collect(
    data.load_datasets(DataConfig(dataset="digits", batch_size=64, seed=4)).train_epochs(1, 2)
  )
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
  d = data.load_datasets(
    DataConfig(dataset="npz", npz_path=path, batch_size=8, holdout_fraction=0.2)
  )
  assert d.info.num_train == 24 and d.info.num_test == 6
  assert d.info.image_shape == (5, 5, 3)
  path = _write_npz(
    tmp_path / "b.npz", x=x[..., 0] / 255.0, y=y, x_test=x[:7, ..., 0] / 255.0, y_test=y[:7]
  )
  d = data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=8))
  assert d.info.num_train == 30 and d.info.num_test == 7
  assert d.info.image_shape == (5, 5, 1)


@pytest.mark.parametrize(
  "arrays, message",
  [
    (dict(x=np.zeros([10, 4, 4, 3]), y=np.zeros([9], int)), "one label per image"),
    (dict(x=np.zeros([10, 4]), y=np.zeros([10], int)), "must have shape"),
    (dict(x=np.zeros([10, 4, 4, 2]), y=np.zeros([10], int)), "must have shape"),
    (dict(x=np.full([10, 4, 4, 1], 7.0), y=np.zeros([10], int)), "float in [0, 1]"),
    (dict(x=np.zeros([10, 4, 4, 1]), y=np.zeros([10])), "integer class ids"),
    (dict(image=np.zeros([10, 4, 4, 1]), y=np.zeros([10], int)), "missing array 'x'"),
  ],
)
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
  with pytest.raises(data.DataError, match="holds no prepared tfds 'cifar10' data"):
    data.load_datasets(DataConfig(dataset="cifar10", data_dir=str(tmp_path)))


@pytest.mark.parametrize(
  "name, shape, classes",
  [("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100), ("mnist", (28, 28, 1), 10)],
)
def test_tfds_sources_under_mock_data(tmp_path, name, shape, classes):
  with tfds.testing.mock_data(num_examples=20):
    cfg = DataConfig(dataset=name, data_dir=str(tmp_path), batch_size=4, augment=True)
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
    d = data.load_datasets(
      DataConfig(
        dataset="imagenet2012",
        data_dir=str(tmp_path),
        batch_size=2,
        eval_batch_size=3,
        image_size=48,
      )
    )
    x, _ = next(iter(d.train))
    assert x["image"].shape == (2, 48, 48, 3) and d.info.num_classes == 1000
    x, _ = next(iter(d.test))
    assert x["image"].shape == (3, 48, 48, 3)
    assert 0.0 <= float(tf.reduce_min(x["image"])) <= float(tf.reduce_max(x["image"])) <= 1.0


# -- sources registry, synthetic data ------------------------------------------


def test_every_configured_dataset_has_a_loader():
  assert set(sources.LOADERS) == set(config.DATASETS)
  assert set(sources.SYNTHETIC_LIKE) == set(config.SYNTHETIC_LIKE)


@pytest.mark.parametrize(
  "like, shape, classes",
  [
    ("digits", (8, 8, 1), 10),
    ("mnist", (28, 28, 1), 10),
    ("cifar10", (32, 32, 3), 10),
    ("cifar100", (32, 32, 3), 100),
    ("imagenet2012", (40, 40, 3), 1000),
  ],
)
def test_synthetic_takes_shape_and_classes_of_the_dataset_it_stands_in_for(like, shape, classes):
  cfg = DataConfig(
    dataset="synthetic",
    synthetic_like=like,
    image_size=40,
    synthetic_train_examples=12,
    synthetic_test_examples=5,
    batch_size=4,
    eval_batch_size=4,
  )
  d = data.load_datasets(cfg)
  assert d.info.image_shape == shape and d.info.num_classes == classes
  assert (d.info.num_train, d.info.num_test) == (12, 5)
  im, idx, y = _collect(d.train)
  assert im.shape == (12,) + shape and im.min() >= 0 and im.max() <= 1
  assert sorted(idx) == list(range(12)) and y.min() >= 0 and y.max() < classes
  _, test_idx, _ = _collect(d.test)
  np.testing.assert_array_equal(test_idx, np.arange(5))


def test_synthetic_is_keyed_by_index_and_deterministic_by_seed():
  cfg = DataConfig(
    dataset="synthetic",
    synthetic_like="cifar10",
    seed=5,
    synthetic_train_examples=40,
    synthetic_test_examples=8,
    batch_size=8,
  )
  d = data.load_datasets(cfg)
  im0, idx0, y0 = _collect(d.train_epochs(0, 1))
  im1, idx1, y1 = _collect(d.train_epochs(1, 2))
  assert not np.array_equal(idx0, idx1)
  order0, order1 = np.argsort(idx0), np.argsort(idx1)
  np.testing.assert_array_equal(im0[order0], im1[order1])  # Same example per id.
  np.testing.assert_array_equal(y0[order0], y1[order1])
  again, _, _ = _collect(data.load_datasets(cfg).train_epochs(0, 1))
  np.testing.assert_array_equal(again, im0)
  other, idx2, _ = _collect(data.load_datasets(dataclasses.replace(cfg, seed=6)).train_epochs(0, 1))
  assert not np.allclose(other[np.argsort(idx2)], im0[order0])
  assert len(np.unique(y0)) > 3  # Labels spread over the classes.
  images, labels = example_lookup.train_examples_by_index(cfg, idx0[:5])
  np.testing.assert_array_equal(images, im0[:5])
  np.testing.assert_array_equal(labels, y0[:5])
  np.testing.assert_array_equal(example_lookup.read_train_labels(cfg)[idx0], y0)
  test_im, _, _ = _collect(d.test)
  assert not np.allclose(test_im[:5], im0[order0][:5])  # Splits differ.


def test_synthetic_shape_and_num_classes_override_the_table():
  cfg = DataConfig(
    dataset="synthetic",
    synthetic_like="cifar10",
    synthetic_shape=(6, 5, 1),
    num_classes=3,
    synthetic_train_examples=30,
    batch_size=30,
  )
  d = data.load_datasets(cfg)
  assert d.info.image_shape == (6, 5, 1) and d.info.num_classes == 3
  _, _, y = _collect(d.train)
  assert set(y.tolist()) == {0, 1, 2}


# -- augmentation keyed by (seed, id, epoch) -----------------------------------


@pytest.mark.parametrize("dataset", ["digits", "synthetic"])
def test_augmented_epochs_are_a_function_of_seed_id_and_epoch(dataset):
  cfg = DataConfig(
    dataset=dataset,
    augment=True,
    batch_size=32,
    seed=2,
    max_train_examples=256,
    synthetic_like="cifar10",
  )
  tf.random.set_seed(cfg.seed)  # As experiment.run does before loading data.
  whole, whole_idx, _ = _collect(data.load_datasets(cfg).train_epochs(0, 3))
  # A run resumed at epoch 2: a new pipeline (fresh random op states).
  tf.random.set_seed(cfg.seed)
  resumed, resumed_idx, _ = _collect(data.load_datasets(cfg).train_epochs(2, 3))
  per_epoch = len(resumed)
  np.testing.assert_array_equal(resumed_idx, whole_idx[-per_epoch:])
  np.testing.assert_array_equal(resumed, whole[-per_epoch:])
  # The same example is augmented differently in different epochs.
  e0 = dict(zip(whole_idx[:per_epoch], whole[:per_epoch]))
  e2 = dict(zip(resumed_idx, resumed))
  common = sorted(set(e0) & set(e2))[:50]
  assert sum(not np.array_equal(e0[i], e2[i]) for i in common) > len(common) // 2


def test_pad_crop_flip_is_a_shifted_possibly_flipped_copy():
  image = tf.random.stateless_uniform([8, 8, 3], seed=[1, 2])
  seed = augment.example_seed(0, tf.constant(5, tf.int64), 3)
  out = augment.pad_crop_flip(image, seed).numpy()
  again = augment.pad_crop_flip(image, seed).numpy()
  np.testing.assert_array_equal(out, again)
  padded = np.pad(image.numpy(), [[4, 4], [4, 4], [0, 0]])
  windows = [padded[r : r + 8, c : c + 8] for r in range(9) for c in range(9)]
  assert any(np.array_equal(out, w) or np.array_equal(out, w[:, ::-1]) for w in windows)
  other = augment.example_seed(0, tf.constant(5, tf.int64), 4).numpy()
  assert not np.array_equal(seed.numpy(), other)


# -- shuffle buffer ------------------------------------------------------------


def test_auto_shuffle_buffer_shuffles_the_whole_in_memory_dataset():
  cfg = DataConfig(dataset="digits", batch_size=64)
  assert cfg.shuffle_buffer == 0
  d = data.load_datasets(cfg)
  source = sources.load_source(cfg)
  assert data.shuffle_buffer_size(cfg, source) == d.info.num_train
  x, _ = next(iter(d.train))
  assert int(tf.reduce_max(x["index"])) > d.info.num_train // 2
  small = dataclasses.replace(cfg, shuffle_buffer=8)
  assert data.shuffle_buffer_size(small, source) == 8
  x, _ = next(iter(data.load_datasets(small).train))
  assert int(tf.reduce_max(x["index"])) < 8 + 64  # A window, not the whole set.


def test_imagenet_auto_shuffle_buffer_is_the_documented_constant(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    cfg = DataConfig(dataset="imagenet2012", data_dir=str(tmp_path), image_size=32)
    source = sources.load_source(cfg)
  assert source.shuffle_buffer == min(6, sources.IMAGENET_SHUFFLE_BUFFER)
  assert sources.IMAGENET_SHUFFLE_BUFFER == 50_000


# -- class counts and bad values -----------------------------------------------


def _labels_npz(tmp_path, y, **extra):
  x = np.zeros([len(y), 4, 4, 1], np.uint8)
  return _write_npz(tmp_path / "c.npz", x=x, y=np.asarray(y), **extra)


def _npz_error(path, **kwargs) -> str:
  with pytest.raises(data.DataError) as err:
    data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=2, **kwargs))
  assert "\n" not in str(err.value)
  return str(err.value)


def test_a_stray_label_is_an_error_not_a_bigger_model(tmp_path):
  y = list(range(10)) * 3 + [1000]
  message = _npz_error(_labels_npz(tmp_path, y))
  assert "up to 1000" in message and "num_classes" in message
  # Declared in the npz or by flag: the label is outside the classes.
  message = _npz_error(_labels_npz(tmp_path, y, num_classes=np.int64(10)))
  assert "label 1000 outside the 10 classes" in message
  message = _npz_error(_labels_npz(tmp_path, y), num_classes=10)
  assert "label 1000 outside the 10 classes" in message
  message = _npz_error(_labels_npz(tmp_path, y, num_classes=10), num_classes=12)
  assert "--num_classes=12 disagrees" in message


def test_class_count_comes_from_the_npz_or_the_flag(tmp_path):
  y = [0, 1, 2, 0, 1, 2, 0, 1, 2, 5]
  path = _labels_npz(tmp_path, y, num_classes=np.array([7]))
  d = data.load_datasets(DataConfig(dataset="npz", npz_path=path, batch_size=2))
  assert d.info.num_classes == 7 and "7 classes" in d.info.describe()
  d = data.load_datasets(
    DataConfig(dataset="npz", npz_path=_labels_npz(tmp_path, y), batch_size=2, num_classes=6)
  )
  assert d.info.num_classes == 6
  d = data.load_datasets(
    DataConfig(dataset="npz", batch_size=2, npz_path=_labels_npz(tmp_path, [0, 1, 2] * 4))
  )
  assert d.info.num_classes == 3  # Inferred: every id below the max occurs.
  message = _npz_error(_labels_npz(tmp_path, y, num_classes=np.float32(7)))
  assert "num_classes must be one integer" in message


def test_num_classes_flag_must_agree_with_known_datasets(tmp_path):
  with pytest.raises(
    data.DataError, match="--num_classes=5 disagrees with the 10 classes of digits"
  ):
    data.load_datasets(DataConfig(dataset="digits", num_classes=5))
  assert data.load_datasets(DataConfig(dataset="digits", num_classes=10)).info.num_classes == 10
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(data.DataError, match="100 classes of tfds cifar100"):
      data.load_datasets(DataConfig(dataset="cifar100", data_dir=str(tmp_path), num_classes=10))


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_nan_and_inf_images_are_reported_as_such(tmp_path, bad, word):
  x = np.full([10, 4, 4, 1], 0.5, np.float32)
  x[3, 1, 1, 0] = bad
  message = _npz_error(_write_npz(tmp_path / "n.npz", x=x, y=np.arange(10) % 2))
  assert f"1 {word}" in message and "values in [" not in message


def test_config_rejects_bad_synthetic_and_shuffle_settings():
  base = config.Config(output_dir="/tmp/x")
  # A field outside its choices or minimum is refused when the section is
  # built; rules across fields when the run's config is validated.
  for options, message in (
    ({"dataset": "synthetic", "synthetic_like": "svhn"}, "unknown --synthetic_like"),
    ({"dataset": "synthetic", "synthetic_shape": (4, 4)}, "must be H,W,C"),
    ({"shuffle_buffer": -1}, "--shuffle_buffer=-1 must be >= 0"),
    ({"num_classes": 1}, "--num_classes=1 must be >= 2"),
  ):
    with pytest.raises(config.ConfigError, match=message):
      validation.validate(dataclasses.replace(base, data=DataConfig(**options)))


def test_a_file_that_is_not_an_npz_archive_is_named_so(tmp_path):
  path = tmp_path / "x.npz"
  path.write_bytes(b"\x80\x04 not a zip archive")
  with pytest.raises(data.DataError, match="not a readable .npz archive") as e:
    data.load_npz_arrays(str(path))
  assert "pickled" not in str(e.value)
