"""hwrlib: data, models and training for the hwr-repro reproducibility study."""
__version__ = "0.1.0"
