"""mlnb: the Machine Learning Notebook blog series as a reproducible pipeline."""

__version__ = "0.1.0"
