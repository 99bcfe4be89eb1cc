"""iaat_tf.reports.plots: every plot writes a real PNG; statistics are correct."""

import json
import os

import numpy as np
import pytest

from iaat_tf.reports import curves, plots


def _assert_png(path):
  assert os.path.isfile(path)
  with open(path, "rb") as f:
    assert f.read(8).startswith(b"\x89PNG")
  assert os.path.getsize(path) > 2048
  leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
  assert not leftovers


@pytest.fixture(name="eps_and_labels")
def _eps_and_labels():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, size=500).astype(np.int64)
  eps = (rng.uniform(0, 16, size=500) / 255).astype(np.float32)
  eps[:50] = 0.0
  return eps, labels


def test_histogram(tmp_path, eps_and_labels):
  eps, _ = eps_and_labels
  path = str(tmp_path / "hist.png")
  assert plots.plot_eps_histogram(eps, path, title="t", eps_reference=8 / 255) == path
  _assert_png(path)
  path2 = plots.plot_eps_histogram(np.full(7, 0.03), str(tmp_path / "c.png"))
  _assert_png(path2)


def test_eps_per_class_hand_made():
  eps = np.array([1.0, 3.0, 10.0, 2.0, 6.0], np.float32)
  labels = np.array([0, 0, 2, 0, 2])
  means = plots.eps_per_class(eps, labels, num_classes=4)
  np.testing.assert_allclose(means[[0, 2]], [2.0, 8.0])
  assert np.isnan(means[1]) and np.isnan(means[3])
  with pytest.raises(ValueError):
    plots.eps_per_class(eps, labels, num_classes=2)
  with pytest.raises(ValueError):
    plots.eps_per_class(eps, labels[:3], num_classes=4)


def test_plot_eps_per_class(tmp_path, eps_and_labels):
  eps, labels = eps_and_labels
  _assert_png(plots.plot_eps_per_class(eps, labels, str(tmp_path / "a.png")))
  names = [f"class_{i}" for i in range(12)]  # Classes 10, 11 absent.
  _assert_png(plots.plot_eps_per_class(eps, labels, str(tmp_path / "b.png"), class_names=names))


def test_extreme_indices():
  eps = np.array([0.5, 0.1, 0.9, 0.0, 0.7, 0.3, 0.8, 0.2])
  small, large = plots.extreme_indices(eps, 3)
  np.testing.assert_array_equal(small, [3, 1, 7])
  np.testing.assert_array_equal(large, [2, 6, 4])
  # Fewer than 2k examples: disjoint halves, nothing lost or repeated.
  small, large = plots.extreme_indices(eps[:5], 4)
  np.testing.assert_array_equal(small, [3, 1, 0])
  np.testing.assert_array_equal(large, [2, 4])
  small, large = plots.extreme_indices([0.2], 8)
  np.testing.assert_array_equal(small, [0])
  assert large.size == 0


@pytest.mark.parametrize("channels,m", [(1, 40), (3, 40), (3, 5), (1, 1)])
def test_extremes_grid(tmp_path, channels, m):
  rng = np.random.default_rng(1)
  images = rng.uniform(size=(m, 8, 8, channels)).astype(np.float32)
  eps = rng.uniform(0, 16 / 255, size=m)
  _assert_png(plots.plot_eps_extremes_grid(images, eps, str(tmp_path / "grid.png"), k=8))


def test_extremes_grid_rejects_bad_shapes(tmp_path):
  with pytest.raises(ValueError):
    plots.plot_eps_extremes_grid(np.zeros((4, 8, 8, 2)), np.zeros(4), str(tmp_path / "g.png"))
  with pytest.raises(ValueError):
    plots.plot_eps_extremes_grid(np.zeros((4, 8, 8, 3)), np.zeros(3), str(tmp_path / "g.png"))


def _curve(scale):
  return [
    {
      "eps": e / 255,
      "pgd_ce": scale * (1 - e / 20),
      "pgd_margin": scale * (1 - e / 19),
      "apgd_ce": scale * (1 - e / 18),
      "apgd_dlr": scale * (1 - e / 17),
      "worst_case": scale * (1 - e / 16),
    }
    for e in (0, 2, 4, 8, 12)
  ]


def test_robustness_curve(tmp_path):
  _assert_png(curves.plot_robustness_curve({"iaat": _curve(0.9)}, str(tmp_path / "one.png")))
  pgd_only = [{"eps": p["eps"], "pgd_ce": p["pgd_ce"]} for p in _curve(0.8)]
  _assert_png(
    curves.plot_robustness_curve(
      {"iaat": _curve(0.9), "pgd_at": pgd_only}, str(tmp_path / "two.png"), detail_run="iaat"
    )
  )
  with pytest.raises(ValueError):
    curves.plot_robustness_curve({}, str(tmp_path / "none.png"))


def test_training_history(tmp_path):
  history = {
    "loss": [2.0, 1.5, 1.2],
    "train_acc": [0.3, 0.5, 0.6],
    "clean_acc": [0.35, 0.5, 0.62],
    "eps_mean": [0.01, 0.02, 0.025],
    "val_clean_acc": [0.3, 0.4, 0.5],
    "val_pgd_acc": [0.1, 0.2, 0.3],
    "epoch_seconds": [3.0, 2.9, 3.1],
  }
  _assert_png(curves.plot_training_history(history, str(tmp_path / "h.png")))
  _assert_png(curves.plot_training_history({"loss": [1.0]}, str(tmp_path / "h1.png")))


def test_eps_summary(eps_and_labels):
  eps, labels = eps_and_labels
  summary = plots.eps_summary(eps, labels)
  json.dumps(summary, allow_nan=False)
  assert summary["count"] == 500
  assert summary["min"] == 0.0 and summary["zero_fraction"] == pytest.approx(0.1, abs=0.01)
  assert summary["mean"] == pytest.approx(float(eps.mean()), rel=1e-6)
  assert set(summary["quantiles"]) == {"0.1", "0.25", "0.75", "0.9"}
  assert summary["quantiles"]["0.1"] <= summary["median"] <= summary["quantiles"]["0.9"]
  means = plots.eps_per_class(eps, labels, 10)
  for c in range(10):
    assert summary["per_class_mean"][str(c)] == pytest.approx(means[c])
  small = plots.eps_summary([0.0, 0.0, 4 / 255, 8 / 255], [0, 0, 2, 2])
  assert small["zero_fraction"] == 0.5
  assert small["per_class_mean"] == {"0": 0.0, "2": pytest.approx(6 / 255)}
  assert "per_class_mean" not in plots.eps_summary(eps)


def test_radii_in_the_units_users_type():
  assert plots.format_radius(8 / 255, per_255=True) == "8/255"
  assert plots.format_radius(0.0, per_255=True) == "0"
  assert plots.format_radius(2.5 / 255, per_255=True) == "2.5/255"
  assert plots.format_radius(0.3, per_255=False) == "0.3"
  assert plots.uses_per_255([0, 8 / 255, 16 / 255])
  assert not plots.uses_per_255([0.3])


def test_pictures_with_labels_gaps_and_normal_file_mode(tmp_path):
  rng = np.random.default_rng(2)
  images = rng.uniform(size=(20, 8, 8, 1)).astype(np.float32)
  eps = rng.uniform(0, 0.4, size=20)
  labels = rng.integers(0, 10, size=20)
  grid = plots.plot_eps_extremes_grid(images, eps, str(tmp_path / "g.png"), k=4, labels=labels)
  _assert_png(grid)
  with pytest.raises(ValueError):
    plots.plot_eps_extremes_grid(images, eps, str(tmp_path / "g.png"), labels=labels[:3])
  history = {
    "epoch": [1, 2, 3],
    "loss": [2.0, 1.5, 1.2],
    "val_pgd_acc": [None, 0.2, None],
    "learning_rate": [0.1, 0.1, 0.02],
    "eps_table_zero_frac": [0.5, 0.2, 0.1],
    "eps_mean": [0.3, 0.2, 0.25],
  }
  path = curves.plot_training_history(history, str(tmp_path / "h.png"), per_255=False)
  _assert_png(path)
  hist = plots.plot_eps_histogram(eps, str(tmp_path / "e.png"), eps_reference=0.3)
  mask = os.umask(0)
  os.umask(mask)
  for p in (grid, path, hist):
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~mask


def test_eps_over_epochs_bands(tmp_path):
  epochs = np.arange(1, 9)
  table_q = {
    f"eps_table_q{q}": list(np.linspace(0.0, 0.05 * q / 50, 8)) for q in (10, 25, 50, 75, 90)
  }
  history = {"epoch": list(epochs), "eps_table_mean": list(np.linspace(0, 0.05, 8)), **table_q}
  path = curves.plot_eps_over_epochs(
    history, str(tmp_path / "bands.png"), warmup_eps=0.3, eval_eps=0.2, warmup_epochs=3
  )
  assert os.path.getsize(path) > 10_000
  # The quantiles share one panel of the training history (not five).
  history_path = curves.plot_training_history(history, str(tmp_path / "h.png"))
  assert os.path.getsize(history_path) > 10_000
