"""A two-parameter grid over models; each cell logs its fitted model as an MLflow Model.

``mlflow_run.log_model`` logs through MLflow's scikit-learn flavor (loadable
with ``mlflow.pyfunc.load_model``, signature inferred from the input example).
When the session passes (every cell passed, and the gate too), the best cell
by accuracy becomes a new version of the registered model ``breast-cancer-clf``
with the alias ``candidate``; ``--mlexp-no-register`` (pull requests) skips it.
"""

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODELS = {
    "logreg": lambda c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)),
    "forest": lambda c: RandomForestClassifier(n_estimators=int(20 * c) + 10, random_state=0),
}
#: MLflow saves scikit-learn models with skops, which loads only the types it is told
#: to trust; a forest's trees are one (we made them, so we trust them).
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


# Gate: fail if a model falls under these bounds, or (with --mlexp-baseline-file
# experiments/baseline.yaml) loses more than 0.02 of a metric (2% for larger values).
@pytest.mark.mlexp(
    expect={"accuracy": ">= 0.9", "auc": ">= 0.95"},
    tolerance="0.02 or 2%",
    best="accuracy",
    register="breast-cancer-clf",
)
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("C", [0.1, 1.0])
def experiment_classifier(mlflow_run, breast_cancer, model, C):
    X, y = breast_cancer
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    estimator = MODELS[model](C).fit(X_train, y_train)
    predicted = estimator.predict(X_test)

    mlflow_run.log_model(estimator, input_example=X_test[:5], skops_trusted_types=TRUSTED_TYPES)

    return {
        "accuracy": accuracy_score(y_test, predicted),
        "f1": f1_score(y_test, predicted),
        "auc": roc_auc_score(y_test, estimator.predict_proba(X_test)[:, 1]),
    }
