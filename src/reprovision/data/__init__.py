"""Datasets: where they come from, how to read them, and how batches reach the model."""

SPLITS = ("train", "val", "test")  # the split stage's outputs; every later stage reads these names
