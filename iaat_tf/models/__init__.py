"""Classifiers: images in [0, 1] (NHWC) -> logits; one family per module.

Every model starts with a fixed per-channel standardisation layer, so attacks
and radii live in [0, 1] pixel space while the network sees normalised input.

* `layers.py`: the standardisation layer and BatchNorm every model shares.
* `registry.py`: `build_classifier(ModelConfig, ...)`, the one registry.
* `small_cnn`: a few conv layers, no BatchNorm (fast; tests, quick start).
* `wide_resnet`: the standard pre-activation WideResNet (Zagoruyko &
  Komodakis); depth 6n+4 (28, 34) or Madry's 6n+2 naming (32-10 is the n=5
  network). Not the IAAT authors' network.
* `authors_wrn`: the IAAT authors' modified WRN (`authors_wrn.py`): 160-wide
  stem, parameter-free BatchNorm, avg-pool/zero-channel shortcuts, 1x1-conv
  head; standardises with their own constants, not `CHANNEL_STATS`.
* `resnet50`: ResNet-50 v1.5 (torchvision's layout), random init, logits
  head; like `wide_resnet` it honours `sync_batchnorm` and `dropout` (before
  the logits), which `keras.applications.ResNet50` cannot.

This file only re-exports.
"""

from iaat_tf.models.layers import CHANNEL_STATS, channel_stats  # noqa: F401
from iaat_tf.models.registry import build_classifier  # noqa: F401
from iaat_tf.models.resnet import resnet50  # noqa: F401
from iaat_tf.models.small_cnn import small_cnn  # noqa: F401
from iaat_tf.models.wide_resnet import wide_resnet, wrn_blocks_per_stage  # noqa: F401
