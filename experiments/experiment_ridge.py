"""A hyperparameter grid: one MLflow run per value of alpha."""

import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score


@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_ridge(mlflow_run, diabetes, alpha):
    X, y = diabetes
    r2 = cross_val_score(Ridge(alpha=alpha), X, y, cv=5).mean()
    mlflow_run.log_metric("r2", r2)
    return {"r2_again": r2}
