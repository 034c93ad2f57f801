"""The version of voxmith, importable without importing the studio (the package's `__init__` does)."""

__version__ = "0.1.0"
