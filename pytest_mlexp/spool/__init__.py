"""A tracking server lost mid-session: runs are spooled to a journal and replayed later.

With ``mlexp_on_tracking_error = spool``, once MLflow's bounded HTTP retries
are spent, what a run still had to send goes to
``<rootdir>/.mlexp/journal/<id>.jsonl`` instead, and the item keeps its own
outcome; the server is not asked again that session, and ``mlexp sync``
replays the journal (or the session itself, when the server is back at its
end). With ``fail`` (the default) the item fails with the reason, and its
run is left to the next session's sweep of dead runs.

- ``journal``: the file format, one JSON operation a line;
- ``client``: the stand-in for ``MlflowClient`` that spools when the server is lost;
- ``replay``: sending a journal to the server, exactly once;
- ``rejoin``: the session's end, when the server answers again.
"""
