"""Benchmarks (`eyepurify bench NAME`)."""
