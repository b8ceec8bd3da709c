"""Params from a file: fixed values and grids per experiment function, in YAML.

```yaml
# experiments/params.yaml
experiment_ridge:
  params: {cv: 5, solver: auto}       # fixed values: arguments, or params["cv"]
  grid:   {alpha: [0.1, 1.0, 10.0]}   # axes: one cell per combination
```

- ``loading``: the file read with the line of every key, checked against
  the schema; YAML values as YAML 1.2 reads them (``1e-3`` is a number).
- ``overrides``: ``--mlexp-set KEY=VALUE`` applied to the file's values.
- ``collection``: each experiment function's section turned into
  ``metafunc.parametrize`` calls, with the ids ``@pytest.mark.parametrize``
  would give; called from the pipeline's ``pytest_generate_tests``.
- ``plugin``: registered once collection found tracked items; logs the file
  with each run and tags the runs with the overrides.

Nothing here is imported until collection meets an experiment function, and
the file is read only when it exists.
"""
