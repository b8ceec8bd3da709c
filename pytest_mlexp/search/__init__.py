"""Search beyond grids: random and Bayesian (Optuna) search, one tracked run per trial.

```python
@pytest.mark.mlexp(search={"lr": "loguniform(1e-4, 1e-1)", "kernel": ["rbf", "linear"]},
                   trials=40, objective="val_loss:min", sampler="tpe", seed=0)
def experiment_svm(mlflow_run, lr, kernel): ...
```

- ``space``: the distributions (``uniform(a, b)``, ``loguniform(a, b)``,
  ``int(a, b)``, ``int(a, b, log)``, lists, Optuna objects), parsed without Optuna;
- ``declaration``: the marker's (or the params file's) arguments, checked;
- ``collection``: one item per trial (``experiment_svm[trial-0]``...), the
  values pending until the trial's setup; bad declarations become ``UsageError``;
- ``study``: the Optuna study (journal files under ``.mlexp/optuna`` or a
  database), its sampler and pruner;
- ``plugin``: ask in setup, report intermediate values and prune during the
  call, tell after it; the search's parent run (``mlexp.kind=search``);
- ``kinds``: the ``search`` kind of group run, registered with ``groups``;
- ``figures``: Optuna's optimization history and parameter importances for
  the HTML report, rebuilt from the stored runs.

At session end, the parent's counts and best trial (``groups.completion``) and
the search judged as a whole, by its best trial (``gate.group_runs``), are
those of every group run.

Optuna (``pip install 'pytest-mlexp[search]'``) is imported only when a
trial runs; nothing here is imported unless a function declares a search.
"""
