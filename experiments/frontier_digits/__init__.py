"""frontier_digits: an accuracy study; its README or page names the command (python -m experiments.frontier_digits....)."""
