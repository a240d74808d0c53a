"""MLflow Projects reproducibility kit: a logistic-regression pipeline whose runs can be re-run.

Importing the package changes nothing in the process: each command holds the numeric
libraries' thread pools itself before it loads them (`environment.hold_thread_pools`).
"""

__version__ = "0.1.0"
