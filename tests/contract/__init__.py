"""Contract tests: one suite, every adapter implementation."""
