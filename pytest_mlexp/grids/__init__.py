"""Grids: a parent run per parametrized experiment, and repeats with seeds.

Run hierarchy in a session (``mlflow.parentRunId`` links each level)::

    experiment_ridge                 grid parent (tag mlexp.kind=grid)
    ├── experiment_ridge[0.1]        one run per cell
    └── experiment_ridge[1.0]

and with ``@pytest.mark.mlexp(repeats=3)`` (or ``seeds=[...]``)::

    experiment_ridge                 grid parent
    └── experiment_ridge[0.1]        cell run (mlexp.kind=cell): mean as <metric>,
        ├── experiment_ridge[0.1-seed0]        standard deviation as <metric>.std
        ├── experiment_ridge[0.1-seed1]        one run per repeat
        └── experiment_ridge[0.1-seed2]

- ``repeats``: one item per seed, at collection;
- ``parents``: the group runs an item's run belongs to, found or created
  when the run is created (``groups.creation``), with how many cells the
  grid has in the code (a session may run part of it);
- ``kinds``: the ``cell`` and ``grid`` kinds, registered with ``groups``.

At session end they are completed (counts, best cell, mean and std:
``groups.completion``) as a search's parent is: by the process where the
session ends (``pipeline.finish``).
"""
