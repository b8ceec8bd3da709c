"""Declared input files as MLflow datasets: the runs table's Dataset column, files not uploaded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: MLflow keeps a dataset's digest in 36 characters.
DIGEST_LENGTH = 32


def log_file_inputs(
    client: Any, run_id: str, files: Sequence[tuple[str, Path, str]], context: str
) -> None:
    """Log each ``(name, path, sha256)`` as a dataset input of the run, with ``context``."""
    if not files:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    datasets = [
        DatasetInput(
            dataset=Dataset(
                name=name,
                digest=digest[:DIGEST_LENGTH],
                source_type="local",
                source=json.dumps({"uri": path.as_uri()}),
            ),
            tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)],
        )
        for name, path, digest in files
    ]
    client.log_inputs(run_id, datasets=datasets)
