"""imagenet_pipeline: a timing study; run `python -m bench.imagenet_pipeline.imagenet_pipeline` from the repository root."""
