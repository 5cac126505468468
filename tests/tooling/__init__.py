"""Tests of the developer tooling: the Makefile and the benchmark script."""
