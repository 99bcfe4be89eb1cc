"""alg2_fidelity: an accuracy study; its README or page names the command (python -m experiments.alg2_fidelity....)."""
