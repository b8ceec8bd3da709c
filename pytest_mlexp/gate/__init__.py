"""The regression gate: an experiment fails when a metric breaks a bound or falls behind a baseline.

- ``rules``: bounds, tolerances and the comparison that judges metrics;
- ``baselines``: where baseline metrics come from (runs in the store, a YAML file);
- ``markers``: the rules one item is judged by (project settings and its markers);
- ``plugin``: judges each item after its call, and repeated cells at session end.

What the terminal and the markdown report show is in ``reports.verdicts``.
"""
