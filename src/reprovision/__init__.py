"""reprovision: reproducible image-classification pipelines."""

__version__ = "0.1.0"
