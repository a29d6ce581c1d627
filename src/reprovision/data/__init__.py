"""Datasets: where they come from, how to read them, and how batches reach the model."""
