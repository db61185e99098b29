"""Benchmarks behind `make bench` (never part of `make test`); see bench/README.md."""
