"""Evaluation of reconstructed meshes against ground truth: surface metrics and normal images."""
