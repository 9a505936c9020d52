"""Dagster front door: thin assets over ganops.stages (no stage logic here)."""
