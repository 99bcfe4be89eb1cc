"""Data: where examples come from and the pipelines that feed them, by stable id.

* `pipeline.py`: `load_datasets(DataConfig)`, the train/validation/test
  pipelines (ids before shuffle; per-epoch order from (seed, epoch)).
* `sources.py`: one loader per source (digits, npz, synthetic, tfds).
* `arrays.py`: in-memory arrays (digits, npz) and the held-out split.
* `augment.py`: stateless crops and flips keyed by (seed, example id, epoch).
* `example_ids.py`: `with_example_ids` for your own `tf.data` pipelines.

Pictures of single training examples are read back by
`reports/example_lookup.py`. This file only re-exports.
"""

from iaat_tf.data.arrays import (
  DataError,
  holdout_split,  # noqa: F401
  load_digits_arrays,
  load_npz_arrays,
)
from iaat_tf.data.pipeline import (
  AUTOTUNE,
  TFDS_DATASETS,
  Datasets,  # noqa: F401
  DatasetInfo,
  WorkerShard,
  build_pipelines,
  epoch_seed,
  load_datasets,
  shuffle_buffer_size,
)

__all__ = [
  "DataError",
  "DatasetInfo",
  "Datasets",
  "WorkerShard",
  "epoch_seed",
  "holdout_split",
  "load_datasets",
  "load_digits_arrays",
  "load_npz_arrays",
]
