"""Reuse (``--mlexp-reuse``): an experiment whose fingerprint is unchanged is not executed again.

- ``fingerprint``: what a run's result depends on (test id, params, code,
  declared inputs, environment), hashed, one tag per part;
- ``inputs``: declared data files, hashed with a cache under ``.mlexp/``;
- ``candidates``: the latest run of every test, found with one search per process;
- ``explain``: why an item executed although it ran before;
- ``plugin``: the hooks that fingerprint every run and replay the matching ones.

Nothing here is imported until collection found tracked items.
"""
