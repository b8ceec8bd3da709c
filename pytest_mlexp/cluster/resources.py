"""What an item reserves on a cluster, and whether any node can ever host it.

Pure: no cluster library here. An item's resources come from its marker
(``@pytest.mark.mlexp(resources={"GPU": 1})``), else from the session's
default (ini ``mlexp_resources``, yaml ``resources``); an item that asks for
nothing reserves one CPU. The names are neutral, each backend translates
them: ``CPU``, ``GPU``, ``memory`` and custom ones (Ray's ``num_cpus`` and
``num_gpus`` are read as ``CPU`` and ``GPU``). A backend's own options ride
under its name (``{"GPU": 1, "slurm": {"partition": "gpu", "time": 120}}``)
and the other backends leave them alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Ray's spellings, read as the neutral names.
_ALIASES = {"num_cpus": "CPU", "num_gpus": "GPU"}
#: The backends whose own options may ride in ``resources`` under their name.
BACKENDS = ("ray", "slurm")
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Demand:
    """One item's reservation (``memory`` in bytes), and its backends' own options."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)
    #: Backend name -> its own options for the item (``slurm``: sbatch options).
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def constrained(self) -> bool:
        """Whether only some nodes may host it: a GPU or a custom resource."""
        return bool(self.gpus or self.custom)

    @property
    def key(self) -> tuple[Any, ...]:
        """Items of the same shape share warm workers."""
        options = tuple(sorted((name, repr(sorted(o.items()))) for name, o in self.options.items()))
        return (self.cpus, self.gpus, self.memory, tuple(sorted(self.custom.items())), options)

    def totals(self) -> dict[str, float]:
        """The demand by neutral name (``CPU``, ``GPU``, ``memory``, custom), as nodes offer it."""
        totals = {"CPU": self.cpus, "GPU": self.gpus, "memory": float(self.memory)}
        totals.update(self.custom)
        return {name: amount for name, amount in totals.items() if amount > 0}

    def describe(self) -> str:
        parts = [f"{name}={_number(amount)}" for name, amount in sorted(self.totals().items())]
        return ", ".join(parts) or "nothing"


def demand_of(resources: Mapping[str, Any], place: str) -> Demand:
    """The demand of ``resources`` (marker or default), or ``UsageError`` naming ``place``."""
    if not isinstance(resources, Mapping):
        raise pytest.UsageError(
            f"{place}: resources= must be a mapping such as "
            f"{{'GPU': 1, 'CPU': 4, 'memory': '8GB'}}, not {resources!r}"
        )
    cpus, gpus, memory = 1.0, 0.0, 0
    custom: dict[str, float] = {}
    options: dict[str, Mapping[str, Any]] = {}
    for key, value in resources.items():
        name = str(key)
        if name in BACKENDS:
            if not isinstance(value, Mapping):
                raise pytest.UsageError(
                    f"{place}: {name}: expected a mapping of {name}'s own options, such as "
                    f"{{'partition': 'gpu', 'time': 120}}, not {value!r}"
                )
            options[name] = {str(k): v for k, v in value.items()}
            continue
        if name == "memory":
            memory = _bytes(value, place)
            continue
        amount = _amount(name, value, place)
        name = _ALIASES.get(name, name)
        if name == "CPU":
            cpus = amount
        elif name == "GPU":
            gpus = amount
        else:
            custom[name] = amount
    return Demand(cpus, gpus, memory, custom, options)


def missing(
    demand: Demand, nodes: Iterable[Mapping[str, float]], cluster: str = "the Ray cluster"
) -> str | None:
    """Why no node can ever host ``demand`` (by each node's total resources), or ``None``.

    Names the resources no single node has enough of, and the most any node offers.
    """
    nodes = list(nodes)
    for totals in nodes:
        if all(totals.get(name, 0.0) >= amount for name, amount in demand.totals().items()):
            return None
    short = []
    for name, amount in sorted(demand.totals().items()):
        most = max((totals.get(name, 0.0) for totals in nodes), default=0.0)
        if most < amount:
            short.append(f"{name}={_number(amount)} (the most a node has: {_number(most)})")
    if not short:
        short.append(f"{demand.describe()} together (no node has all of them)")
    return f"no node of {cluster} can ever host " + ", ".join(short)


def capacity(demand: Demand, nodes: Iterable[Mapping[str, float]]) -> int:
    """How many items of ``demand`` the cluster can run at once (at least 1)."""
    total = 0
    for totals in nodes:
        fits = [
            math.floor(totals.get(name, 0.0) / amount + 1e-9)
            for name, amount in demand.totals().items()
        ]
        total += min(fits) if fits else 1
    return max(total, 1)


def _amount(name: str, value: Any, place: str) -> float:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = -1.0
    if isinstance(value, bool) or not amount >= 0 or math.isinf(amount):
        raise pytest.UsageError(f"{place}: resource {name!r} must be a number >= 0, not {value!r}")
    return amount


def _bytes(value: Any, place: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    match = _SIZE.match(str(value))
    if match is None:
        raise pytest.UsageError(
            f"{place}: memory must be bytes or a size such as '8GB' or '512MiB', not {value!r}"
        )
    number, unit, binary, _ = match.groups()
    unit = unit.lower()
    scale = 1024 ** "kmgt".index(unit) * 1024 if binary and unit else _UNITS[unit]
    return int(float(number) * scale)


def _number(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else f"{amount:g}"
