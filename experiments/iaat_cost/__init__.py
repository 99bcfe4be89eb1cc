"""iaat_cost: an accuracy study; its README or page names the command (python -m experiments.iaat_cost....)."""
