"""Artifact discovery: upload the files a run created or changed, safely and cheaply.

When a tracked item's run starts, the configured roots (default: the
rootdir) are snapshotted: a stat-only walk that prunes early and stats only
files whose names match the patterns. When the run ends (after teardown),
the roots are walked again and every new or changed file is uploaded,
together with the matching files in the item's ``tmp_path`` and every file
in ``mlflow_run.output_dir`` (both are fresh per item, so everything in them
is new). Files already uploaded with ``mlflow_run.log_artifact`` are skipped.

Safety: links are never followed out of a root, key and credential files
are never uploaded, and files over the size cap are skipped with a warning.

- ``scanner``: the stat-only walk, the diff, the safety rules, the folders;
- ``concurrency``: telling whether another xdist worker may have written a file;
- ``discovery``: the plugin that snapshots, discovers and uploads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Artifact"]


@dataclass
class Artifact:
    """A file to upload to the run: ``path`` on disk, into the run's ``artifact_path`` folder.

    ``root`` says where it was found: ``"output_dir"``, ``"tmp_path"``, a
    watched root's path, or anything a hook sets.
    """

    path: Path
    artifact_path: str | None
    root: str = ""
