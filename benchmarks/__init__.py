"""Benchmarks: asv suite (bench_*.py), side-by-side peers (compare.py)."""
