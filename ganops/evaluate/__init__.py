"""Evaluation: distribution metrics between real and generated images in a named feature space."""
