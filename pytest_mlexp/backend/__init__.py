"""The one way to MLflow: clients, URIs and UI links, paged searches, group runs, tag names.

Every other part of pytest-mlexp talks to MLflow through this package.
Importing it is cheap; ``mlflow`` is imported when a store is opened.
"""
