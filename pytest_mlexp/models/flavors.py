"""Which MLflow flavor logs a model object, picked from its type without importing any library.

The object's class and its bases are looked up by the package they come from
(``xgboost.sklearn.XGBClassifier`` -> ``xgboost``, before its scikit-learn
base), so an ``XGBClassifier`` is logged by ``mlflow.xgboost``, a user's
``torch.nn.Module`` subclass by ``mlflow.pytorch``. The flavor module
(``mlflow.sklearn``...) is imported only when a model is logged. An object no
flavor handles is an error naming the function to call: nothing is pickled
behind the user's back.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from typing import Any

#: The package a model's class comes from -> MLflow's flavor module for it.
FLAVORS_BY_PACKAGE = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "torch": "pytorch",
    "tensorflow": "tensorflow",
    "tf_keras": "tensorflow",
    "keras": "keras",
    "transformers": "transformers",
}

#: How the supported kinds of objects are named in messages.
SUPPORTED = (
    "scikit-learn, XGBoost, LightGBM, CatBoost, statsmodels, PyTorch, TensorFlow/Keras and "
    "transformers objects, and mlflow.pyfunc.PythonModel"
)


class UnsupportedModelError(TypeError):
    """``mlflow_run.log_model`` got an object no MLflow flavor it knows can log."""


@dataclass(frozen=True)
class Flavor:
    """An MLflow flavor: ``sklearn`` is logged by ``mlflow.sklearn.log_model``."""

    name: str

    @property
    def module(self) -> str:
        return f"mlflow.{self.name}"

    @property
    def function(self) -> str:
        return f"{self.module}.log_model"


def flavor_for(model: Any) -> Flavor:
    """The flavor that logs ``model``, or ``UnsupportedModelError`` saying what to call instead."""
    for cls in type(model).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module.startswith("mlflow.pyfunc") and cls.__name__ == "PythonModel":
            return Flavor("pyfunc")
        package = module.partition(".")[0]
        name = FLAVORS_BY_PACKAGE.get(package)
        if name == "keras" and not _is_keras_3():
            name = "tensorflow"  # Keras 2 (tf.keras) models: mlflow.keras needs Keras 3
        if name is not None:
            return Flavor(name)
    raise UnsupportedModelError(unsupported_message(model))


def unsupported_message(model: Any) -> str:
    """Why ``model`` cannot be logged, and which function to call instead."""
    if isinstance(model, type):
        return (
            f"mlflow_run.log_model: got the class {model.__module__}.{model.__qualname__}, "
            f"not a model; pass the fitted object, e.g. {model.__qualname__}(...).fit(X, y)"
        )
    kind = type(model)
    shown = f"{kind.__module__}.{kind.__qualname__}"
    lines = [
        f"mlflow_run.log_model: no MLflow flavor is known for a {shown} object; "
        f"pytest-mlexp picks the flavor of {SUPPORTED}, and never pickles a model silently."
    ]
    package = kind.__module__.partition(".")[0]
    if package and package != "builtins" and _mlflow_has_module(package):
        lines.append(
            f"MLflow has a flavor for {package}: call mlflow.{package}.log_model(model, "
            'name="model") in the experiment (it logs to the experiment\'s run).'
        )
    else:
        lines.append(
            "Call the MLflow flavor's own function in the experiment, e.g. "
            'mlflow.onnx.log_model(model, name="model"), or wrap the model in a '
            "mlflow.pyfunc.PythonModel and pass that to mlflow_run.log_model."
        )
    return " ".join(lines)


def log_with_flavor(
    flavor: Flavor,
    model: Any,
    *,
    name: str,
    input_example: Any,
    signature: Any,
    flavor_kwargs: dict[str, Any],
) -> Any:
    """Log ``model`` to MLflow's active run with ``flavor``; MLflow's ``ModelInfo``.

    The signature is inferred from ``input_example`` by the flavor when none is
    given. Warnings from MLflow's own modules are not the experiment's: under
    ``filterwarnings = error`` they would fail the logging half-way.
    """
    module = importlib.import_module(flavor.module)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        if flavor.name == "pyfunc":
            return module.log_model(
                name=name,
                python_model=model,
                input_example=input_example,
                signature=signature,
                **flavor_kwargs,
            )
        return module.log_model(
            model, name=name, input_example=input_example, signature=signature, **flavor_kwargs
        )


def _is_keras_3() -> bool:
    keras = sys.modules.get("keras")
    version = str(getattr(keras, "__version__", "3"))
    return not version.startswith(("1.", "2."))


def _mlflow_has_module(package: str) -> bool:
    try:
        return importlib.util.find_spec(f"mlflow.{package}") is not None
    except (ImportError, ValueError):
        return False
