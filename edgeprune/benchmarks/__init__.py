"""Benchmarks: commands that measure and write tables into docs/ (not part of the test suite)."""
