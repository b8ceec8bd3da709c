"""Group runs: one run that holds others, made, named and completed in one place.

An engine that knows no kind: the features register theirs (``kinds.GroupKind``:
grids the cell and the grid, searches the search), each group run tagged
``mlexp.kind`` and linked to its members by ``mlflow.parentRunId``::

    experiment_ridge · 11-28 00:14:12 · a1b2c3d   grid parent (kind grid), by ``grids``
    └── experiment_ridge[0.1]                      repeated cell (kind cell), by ``grids``
        └── experiment_ridge[0.1-seed0]
    experiment_svm · 11-28 00:14:12 · a1b2c3d     search parent (kind search), by ``search``
    └── experiment_svm[trial-0]

- ``naming``: a top-level group run's name, stamped with its session (to the second);
- ``creation``: found or created by whichever process needs it first (xdist
  workers, CI shards sharing a session id), owned by the controller's pid;
- ``best``: the best member by one metric;
- ``collected``: a group's members as the code declares them, before any selection;
- ``kinds``: what a kind registers (its tag, its session's group runs, its fill),
  and what fills share (``2 of 6 cells ran this session``, the best member's values);
- ``completion``: at session end, and again after ``mlexp sync``, each group
  run filled in from its members read back from the store, guarded against
  shards ending together;
- ``sweep``: RUNNING runs of processes that died, marked KILLED.

The gate judges them (``gate.group_runs``).
"""
