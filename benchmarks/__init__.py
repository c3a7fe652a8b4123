"""Benchmarks for cerebro-ops: MOP on Spark vs sequential / task-parallel / data-parallel baselines.

`python -m benchmarks.run [--smoke|--full] [--only NAME]` — see benchmarks/RESULTS.md.
"""
