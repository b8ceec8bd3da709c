"""What a user reads: the terminal summary, the gate's verdicts, the HTML report.

- ``terminal``: the session's summary in the terminal;
- ``verdicts``: the gate's section of it, and the markdown report for pull requests;
- ``stored_runs``: runs read back from a store, for the reports and the ``mlexp`` command;
- ``html``: the self-contained HTML report of stored runs;
- ``session_html``: ``--mlexp-html``, the report of this session, logged to its own run.
"""
