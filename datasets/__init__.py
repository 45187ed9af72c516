"""Builders of benchmark zoos from real training runs, and importers of the field's published zoos."""
