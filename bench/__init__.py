"""Benchmarks: python -m bench all."""
