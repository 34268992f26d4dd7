"""querybatch: a self-hosted server that runs data queries asynchronously, alone or in batches."""

__version__ = "0.1.0"
