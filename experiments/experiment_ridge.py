"""A hyperparameter grid from experiments/params.yaml: one MLflow run per value of alpha.

The file gives ``cv`` (fixed) and ``alpha`` (a grid axis); the runs are
``experiment_ridge[0.1]``, ``[1.0]``, ``[10.0]``, as the same
``@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])`` would make them.
"""

from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score


def experiment_ridge(mlflow_run, diabetes, alpha, cv):
    X, y = diabetes
    r2 = cross_val_score(Ridge(alpha=alpha), X, y, cv=cv).mean()
    mlflow_run.log_metric("r2", r2)
    return {"r2_again": r2}
