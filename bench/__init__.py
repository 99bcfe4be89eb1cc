"""The timing suite: speed and memory, measured and written to files (never in tests).

Run from the repository root as modules: `python -m bench.benchmark`
(RESULTS.md, results.json), and the studies in their folders, e.g.
`python -m bench.fast_at.fast_at`. Accuracy studies are experiments/.
"""
