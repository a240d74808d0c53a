"""MLflow Projects reproducibility kit: a logistic-regression pipeline whose runs can be re-run."""

__version__ = "0.1.0"
