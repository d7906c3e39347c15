"""Benchmark framework for the activity grid (``make bench`` -> ``python -m bench.run``)."""
