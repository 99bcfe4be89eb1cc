"""fast_at: a timing study; run `python -m bench.fast_at.fast_at` from the repository root."""
