"""Shared test builders: settings and wiring, uploads, image makers, hostile inputs, outcome
lines, IAM evaluation. Tests import helpers from here, never from other test files."""
