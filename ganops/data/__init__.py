"""Datasets: sources by name, the common in-memory form and the on-disk artifact."""
