"""square_cost: a timing study; run `python -m bench.square_cost.square_cost` from the repository root."""
