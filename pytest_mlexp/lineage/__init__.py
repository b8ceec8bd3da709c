"""Code lineage: what it takes to re-create a run from MLflow alone (see ``plugin``)."""
