"""Pip requirements inferred once per kind of model, not once per grid cell.

MLflow infers a logged model's requirements by loading it in a fresh Python
process and recording what it imports: about 20 s per model here, against
0.3 s for the rest of ``log_model``. The cells of a grid log models made of
the same classes, so the requirements MLflow inferred for the first are
reused for the next ones with the same flavor and the same packages among
the classes of the object and of the objects it holds. A user's own
``pip_requirements``, ``extra_pip_requirements`` or ``conda_env`` always win.
"""

from __future__ import annotations

from typing import Any

#: Flavor keyword arguments that say what the environment is: never overridden.
USER_ENVIRONMENT = ("pip_requirements", "extra_pip_requirements", "conda_env")
#: Most objects looked at to list the packages a model is made of.
MAX_OBJECTS = 5000

Key = tuple[str, frozenset[str]]

_inferred: dict[Key, list[str]] = {}


def model_key(flavor: str, model: Any) -> Key | None:
    """The flavor and the packages of the classes reachable from ``model``; ``None`` if too big."""
    packages: set[str] = set()
    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > MAX_OBJECTS:
            return None
        packages.add(type(obj).__module__.partition(".")[0])
        if isinstance(obj, str | bytes | int | float | complex | bool | type(None)):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                stack.extend(attributes.values())
    packages.discard("builtins")
    return flavor, frozenset(packages)


def known_requirements(key: Key | None, flavor_kwargs: dict[str, Any]) -> list[str] | None:
    """The requirements inferred earlier for ``key``, unless the user gave an environment."""
    if key is None or any(flavor_kwargs.get(name) is not None for name in USER_ENVIRONMENT):
        return None
    return _inferred.get(key)


def remember(key: Key | None, flavor_kwargs: dict[str, Any], artifact_location: str) -> None:
    """Keep what MLflow inferred for a model just logged (its ``requirements.txt``)."""
    if key is None or key in _inferred:
        return
    if any(flavor_kwargs.get(name) is not None for name in USER_ENVIRONMENT):
        return
    import mlflow

    try:
        text = mlflow.artifacts.load_text(f"{artifact_location.rstrip('/')}/requirements.txt")
    except Exception:
        return  # not kept: the next model infers its own
    lines = [line.strip() for line in text.splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    # Options (-c constraints.txt, -r file) point at files of that model only.
    if requirements and not any(line.startswith("-") for line in requirements):
        _inferred[key] = requirements
