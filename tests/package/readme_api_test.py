"""The README's "Use it from Python" snippet runs as written, on the digits data."""

import os

import numpy as np
import pytest

from tests import readme_snippets

HEADING = "## Use it from Python"


@pytest.mark.slow
def test_readme_snippet_trains_evaluates_and_exports(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # The snippet writes ./digits_model.
  ns = readme_snippets.run_block(HEADING)

  trainer, report, classifier = ns["trainer"], ns["report"], ns["classifier"]
  # The epoch came from the step count: 4 epochs ran, the last 2 after the
  # warmup, so the table moved away from the warmup radii {0, eps}.
  assert int(trainer.epoch.numpy()) == 4
  table = trainer.eps_table.numpy()
  assert table.shape == (1400,)
  assert not np.all(np.isin(np.round(table, 6), [0.0, 0.2])), "no adaptation"
  assert 0.0 <= table.min() and table.max() <= 1.0

  assert report.num_examples == 397
  assert report.clean_accuracy > 0.5  # It learned something in 4 tiny epochs.
  for point in report.curve:
    assert 0.0 <= point.worst_case <= min(point.accuracies.values())
    assert max(point.accuracies.values()) <= report.clean_accuracy

  assert os.path.isdir(tmp_path / "digits_model")
  x = ns["x"][:16]
  np.testing.assert_allclose(
    ns["model"](x).numpy(), classifier(x, training=False).numpy(), atol=1e-5
  )
