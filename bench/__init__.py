"""Benchmarks of the course; ``python -m bench`` (or ``make bench``) runs them."""
