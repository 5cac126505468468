"""Facts computed once at upload from the small decoded copy: placeholder, colour, perceptual hash."""

from chalicelib.facts.compute import Facts, Placeholder, compute_facts
from chalicelib.facts.phash import phash

__all__ = ["Facts", "Placeholder", "compute_facts", "phash"]
