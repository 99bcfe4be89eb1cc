"""method_family: an accuracy study; its README or page names the command (python -m experiments.method_family....)."""
