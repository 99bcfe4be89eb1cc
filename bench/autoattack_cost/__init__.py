"""autoattack_cost: a timing study; run `python -m bench.autoattack_cost.autoattack_cost` from the repository root."""
