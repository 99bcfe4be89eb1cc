"""Models this package did not train, as `images -> logits` functions to attack.

`load_logits_fn` opens a SavedModel (any serving signature or endpoint that
maps one image tensor to logits: `model.export()`, `tf.saved_model.save`, our
own export) or a Keras `.keras` file, and wraps it so that it takes float32
images in [0, 1], NHWC, as every attack here does: the model's own input
range (`input_range`, e.g. (0, 255)) and normalisation (`mean`, `std`,
applied after the range) are applied inside the function.

Loading refuses, in one line, a file that is not a model (model_files.py),
a model with several inputs or several outputs. `check_logits` runs the
function once on real images and turns what would otherwise be a cryptic
failure (or, worse, a meaningless result) into one line: images of the
wrong shape, outputs that are not [N, classes], and outputs that are
probabilities (rows in [0, 1] summing to 1: AutoAttack's losses need
logits; a softmax output would make every gradient-based attack weaker).
`clean_accuracy` and `chance_warning` tell a model fed inputs it does not
expect (at chance on clean images) before AutoAttack's long run.
"""

from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from iaat_tf.attacks import gradients
from iaat_tf.evaluation import autoattack, model_files
from iaat_tf.options import first_line

LogitsFn = Callable[[tf.Tensor], tf.Tensor]


class ForeignModelError(ValueError):
  """A model that cannot be evaluated as images -> logits (one line)."""


def _one_in_one_out(what: str, inputs: Sequence[str], outputs: Sequence[str]) -> None:
  """ForeignModelError unless the model has one (image) input and one output."""
  if len(inputs) > 1:
    raise ForeignModelError(
      f"{what} takes {len(inputs)} inputs ({', '.join(inputs)}); evaluation needs a "
      "model of one image input [N, H, W, C]: save one that feeds the others itself"
    )
  if len(outputs) > 1:
    raise ForeignModelError(
      f"{what} has {len(outputs)} outputs ({', '.join(outputs)}); evaluation needs one "
      "logits output [N, classes]: save a model of that output alone, e.g. "
      "keras.Model(model.inputs, model.outputs[0])"
    )


def _names(structure, default: str) -> list:
  """The tensors of a nested structure, by name (or `default`-i)."""
  flat = tf.nest.flatten(structure, expand_composites=False)
  return [getattr(t, "name", None) or f"{default}{i}" for i, t in enumerate(flat)]


def _saved_model_fn(path: str, signature: Optional[str]):
  """(callable taking one image tensor, description) of a SavedModel."""
  try:
    loaded = tf.saved_model.load(path)
  except (OSError, ValueError, tf.errors.OpError) as e:
    first = first_line(e)
    raise ForeignModelError(
      f"--saved_model={path}: not a readable SavedModel ({first[:200]})"
    ) from None
  signatures = dict(getattr(loaded, "signatures", {}) or {})
  if signature is None and hasattr(loaded, "serve") and callable(loaded.serve):
    endpoint = loaded.serve  # Keras' model.export() and our export_classifier.
    concrete = getattr(endpoint, "concrete_functions", None)
    if concrete:
      (args, kwargs), outputs = concrete[0].structured_input_signature, concrete[0].outputs
      _one_in_one_out(
        f"--saved_model={path}", _names((args, kwargs), "input"), _names(outputs, "output")
      )
    serve = lambda x: endpoint(x)
    setattr(serve, "input_shape", _serve_input_shape(endpoint))
    return serve, loaded, "serve"
  name = signature or "serving_default"
  if name not in signatures:
    have = ", ".join(sorted(signatures)) or "none"
    raise ForeignModelError(
      f"--saved_model={path}: no signature {name!r} "
      f"(signatures: {have}; choose one with --signature)"
    )
  fn = signatures[name]
  _, kwargs = fn.structured_input_signature
  tensors = {k: v for k, v in kwargs.items() if isinstance(v, tf.TensorSpec)}
  if len(tensors) != 1:
    raise ForeignModelError(
      f"--saved_model={path}: signature {name!r} takes {len(tensors)} inputs "
      f"({', '.join(sorted(tensors))}); evaluation needs one image input"
    )
  ((key, spec),) = tensors.items()
  if spec.shape.rank not in (None, 4):
    raise ForeignModelError(
      f"--saved_model={path}: signature {name!r} input {key!r} has shape "
      f"{spec.shape}, not images [N, H, W, C]"
    )

  def call(x):
    out = fn(**{key: tf.cast(x, spec.dtype)})
    if isinstance(out, dict):
      if len(out) != 1:
        raise ForeignModelError(
          f"--saved_model={path}: signature {name!r} has {len(out)} outputs "
          f"({', '.join(sorted(out))}); evaluation needs one logits output"
        )
      out = next(iter(out.values()))
    return out

  setattr(call, "input_shape", _shape(spec.shape))
  return call, loaded, name


def _shape(shape) -> Optional[tuple]:
  """An image input's shape without the batch axis (None where unknown)."""
  try:
    dims = tf.TensorShape(shape).as_list()
  except (TypeError, ValueError):
    return None
  return tuple(dims[1:]) if dims else None


def _serve_input_shape(endpoint) -> Optional[tuple]:
  """The image shape a `serve` endpoint was traced for, if it says."""
  for attr in ("input_signature",):
    spec = getattr(endpoint, attr, None)
    if spec and isinstance(spec[0], tf.TensorSpec):
      return _shape(spec[0].shape)
  try:
    args, _ = endpoint.concrete_functions[0].structured_input_signature
    return _shape(args[0].shape)
  except (AttributeError, IndexError, TypeError):
    return None


def load_logits_fn(
  *,
  saved_model: Optional[str] = None,
  keras_model: Optional[str] = None,
  input_range: Sequence[float] = (0.0, 1.0),
  mean: Optional[Sequence[float]] = None,
  std: Optional[Sequence[float]] = None,
  signature: Optional[str] = None,
) -> LogitsFn:
  """images in [0, 1] -> float32 logits of a SavedModel or a .keras file."""
  if (saved_model is None) == (keras_model is None):
    raise ForeignModelError("give one of --saved_model and --keras_model")
  if saved_model is not None:
    call, keep_alive, _ = _saved_model_fn(saved_model, signature)
  else:
    import keras  # pylint: disable=g-import-not-at-top

    bad = model_files.problem("keras_model", str(keras_model))
    if bad:
      raise ForeignModelError(bad)
    try:
      model = keras.saving.load_model(keras_model, compile=False)
    except (OSError, ValueError, TypeError) as e:
      first = first_line(e)
      raise ForeignModelError(
        f"--keras_model={keras_model}: cannot be loaded ({first[:200]})"
      ) from None
    ins, outs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    _one_in_one_out(f"--keras_model={keras_model}", _names(ins, "input"), _names(outs, "output"))
    call, keep_alive = (lambda x: model(x, training=False)), model
    try:
      setattr(call, "input_shape", _shape(model.inputs[0].shape))
    except (AttributeError, IndexError, TypeError, ValueError):
      setattr(call, "input_shape", None)
  low, high = (float(v) for v in input_range)
  mean_t = None if mean is None else tf.constant(mean, tf.float32)
  std_t = None if std is None else tf.constant(std, tf.float32)

  def logits_fn(images):
    x = tf.cast(images, tf.float32) * (high - low) + low
    if mean_t is not None:
      x = x - mean_t
    if std_t is not None:
      x = x / std_t
    return tf.cast(call(x), tf.float32)

  setattr(logits_fn, "model", keep_alive)  # Keeps the model's variables alive.
  setattr(logits_fn, "input_shape", getattr(call, "input_shape", None))
  # Keras models run with training=False and serving signatures in inference
  # mode: every example on its own (per-example float16 protection).
  return gradients.mark_independent(logits_fn)


def _dims(shape) -> str:
  """(8, 8, 1) as 8x8x1, unknown dimensions as ?."""
  return "x".join("?" if d is None else str(d) for d in shape)


def chance_warning(clean_accuracy: float, labels, convention: str) -> Optional[str]:
  """A warning line when clean accuracy is no better than always predicting
  the most frequent label (within 3 binomial standard deviations): the
  model most likely expects other inputs than it was given."""
  labels = np.asarray(labels)
  majority = autoattack.majority_rate(labels)
  if majority is None:
    return None
  margin = 3.0 * float(np.sqrt(majority * (1.0 - majority) / labels.size))
  if clean_accuracy > majority + margin:
    return None
  return (
    f"clean accuracy {100 * clean_accuracy:.1f}% on {labels.size} test images is "
    f"at chance (the most frequent label is {100 * majority:.1f}% of them): the "
    f"model most likely expects other inputs than it got ({convention}); "
    "check --input_range, --input_mean and --input_std"
  )


def clean_accuracy(logits_fn: LogitsFn, dataset) -> tuple[float, np.ndarray]:
  """(clean accuracy, labels) of `logits_fn` on a dataset of (images or
  {"image", ...}, labels) batches: one forward pass over every example."""
  call = tf.function(lambda x: tf.argmax(logits_fn(x), -1), reduce_retracing=True)
  hits, labels = [], []
  for x, y in dataset:
    images = x["image"] if isinstance(x, dict) else x
    hits.append(np.asarray(call(tf.cast(images, tf.float32))) == np.asarray(y))
    labels.append(np.asarray(y))
  if not labels:
    raise ForeignModelError("the test split is empty")
  return float(np.concatenate(hits).mean()), np.concatenate(labels)


def check_logits(logits_fn: LogitsFn, images: np.ndarray, num_classes: int, what: str) -> None:
  """ForeignModelError (one line) unless `logits_fn` maps `images` to logits."""
  try:
    out = logits_fn(tf.constant(images, tf.float32))
  except ForeignModelError:
    raise
  except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
    data_shape = tuple(images.shape[1:])
    model_shape = getattr(logits_fn, "input_shape", None)
    if model_shape is not None and (
      len(model_shape) != len(data_shape)
      or any(m not in (None, d) for m, d in zip(model_shape, data_shape))
    ):
      raise ForeignModelError(
        f"{what} takes images of shape {_dims(model_shape)}; the dataset's are "
        f"{_dims(data_shape)}: check --dataset (and --image_size for ImageNet)"
      ) from None
    first = first_line(e).replace("`", "'")
    if len(first) > 160:
      first = first[:157] + "..."
    raise ForeignModelError(
      f"{what} does not take the dataset's images of shape {_dims(data_shape)} "
      f"({first}); check --dataset (and --image_size for ImageNet)"
    ) from None
  if isinstance(out, (list, tuple, dict)) and len(out) != 1:
    _one_in_one_out(what, [], _names(out, "output"))
  out = np.asarray(tf.nest.flatten(out)[0] if isinstance(out, (list, tuple, dict)) else out)
  if out.ndim != 2 or out.shape[0] != len(images):
    raise ForeignModelError(
      f"{what} maps {len(images)} images to outputs of shape {out.shape}, not [N, classes] logits"
    )
  if out.shape[1] != num_classes:
    raise ForeignModelError(f"{what} outputs {out.shape[1]} classes; the dataset has {num_classes}")
  if not np.all(np.isfinite(out)):
    raise ForeignModelError(f"{what} outputs non-finite values on clean images")
  if out.min() >= 0.0 and out.max() <= 1.0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
    raise ForeignModelError(
      f"{what} outputs probabilities (every row is in [0, 1] and sums to "
      "1), not logits: AutoAttack's losses need logits; export the model "
      "without its final softmax"
    )
