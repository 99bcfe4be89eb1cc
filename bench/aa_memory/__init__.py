"""aa_memory: a timing study; run `python -m bench.aa_memory.aa_memory` from the repository root."""
