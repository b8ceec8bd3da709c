"""Every flag, ini key and ``mlexp.yaml`` key of pytest-mlexp, declared per feature.

Declarations only: nothing here reads a value or imports a feature, so
declaring the options costs nothing in test suites without experiments.
The values are resolved by the ``settings`` modules of each feature.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

#: Keys accepted in ``mlexp.yaml``, per feature.
TRACKING_KEYS = ("tracking_uri", "experiment", "tags")
LINEAGE_KEYS = ("lineage",)
ARTIFACT_KEYS = (
    "artifacts",
    "artifact_roots",
    "artifact_patterns",
    "artifact_exclude",
    "artifact_max_size",
)
AUTOLOG_KEYS = ("autolog",)
REPORT_KEYS = ("html", "figures")
GATE_KEYS = (
    "baseline",
    "baseline_file",
    "tolerance",
    "tolerances",
    "directions",
    "gate",
    "confidence",
    "gate_strict",
    "judge",
    "seed_budget",
)
GRID_KEYS = ("best_metric",)
SPOOL_KEYS = ("on_tracking_error",)
PARAMS_KEYS = ("params_file",)
SEARCH_KEYS = ("search_storage",)
MODEL_KEYS = ("register", "register_alias", "keep_models")
REUSE_KEYS = ("reuse", "inputs")
CLUSTER_KEYS = ("ray", "slurm", "slurm_options", "resources")
SYSTEM_METRICS_KEYS = ("system_metrics",)
COLLECTION_KEYS = ("experiment_paths",)
YAML_KEYS: tuple[str, ...] = (
    *TRACKING_KEYS,
    *LINEAGE_KEYS,
    *ARTIFACT_KEYS,
    *AUTOLOG_KEYS,
    *REPORT_KEYS,
    *GATE_KEYS,
    *GRID_KEYS,
    *SPOOL_KEYS,
    *PARAMS_KEYS,
    *SEARCH_KEYS,
    *MODEL_KEYS,
    *REUSE_KEYS,
    *CLUSTER_KEYS,
    *SYSTEM_METRICS_KEYS,
    *COLLECTION_KEYS,
)

MARKER = (
    "mlexp(experiment=None, tags=None, expect=None, tolerance=None, direction=None, "
    "best=None, repeats=None, seeds=None, register=None, reuse=None, inputs=None, "
    "input_context=None): track this test as an MLflow run, "
    "optionally in another experiment or with extra tags; gate its metrics with bounds "
    "(expect={'accuracy': '>= 0.9'}) and baseline tolerances and directions; best: "
    "metric picking a grid's best cell; repeats/seeds: run each cell once per seed; "
    "register: registered model name the best cell's logged model becomes a version of "
    "when the session passes; reuse=False: always execute it under --mlexp-reuse; inputs: "
    "globs of data files (from the rootdir) it reads, hashed into its fingerprint and logged "
    "as datasets with input_context (default: training). "
    "search={'lr': 'loguniform(1e-4, 1e-1)', 'depth': 'int(2, 12)', 'kernel': ['rbf', "
    "'linear']}, trials=40, objective='val_loss:min', sampler='tpe', seed=0, "
    "pruner='median', study='svm-v1': an Optuna search, one item per trial; "
    "gate='bound'|'mean'|'best', confidence=0.95: how repeated cells are judged against their "
    "baseline ('best': a grid gated once, by its best cell); "
    "judge=['accuracy', 'val_loss']: the metrics the gate judges (default: returned ones, "
    "those logged once, and those a rule names); "
    "resources={'GPU': 1, 'CPU': 4, 'memory': '8GB', 'slurm': {'time': 120}}: what a "
    "cluster (Ray, Slurm) reserves for each of its items."
)

#: The alias a registered version gets unless told otherwise.
DEFAULT_REGISTER_ALIAS = "candidate"

#: The default tolerance, as shown in ``--help``.
DEFAULT_TOLERANCE_TEXT = "1%"


def add_options(parser: pytest.Parser) -> None:
    """Declare every option of every feature, in one ``mlexp`` group."""
    group = parser.getgroup("mlexp", "experiment tracking with MLflow (pytest-mlexp)")
    for add in (
        add_tracking_options,
        add_grid_options,
        add_spool_options,
        add_lineage_options,
        add_artifact_options,
        add_autolog_options,
        add_gate_options,
        add_report_options,
        add_params_options,
        add_search_options,
        add_model_options,
        add_reuse_options,
        add_cluster_options,
        add_system_metrics_options,
        add_collection_options,
    ):
        add(group, parser)


def add_tracking_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-tracking-uri",
        dest="mlexp_tracking_uri",
        metavar="URI",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, ini mlexp_tracking_uri, "
        "else sqlite:///<rootdir>/mlflow.db).",
    )
    group.addoption(
        "--mlexp-experiment",
        dest="mlexp_experiment",
        metavar="NAME",
        default=None,
        help="MLflow experiment for the runs (default: MLFLOW_EXPERIMENT_NAME, "
        "ini mlexp_experiment, else the rootdir's name).",
    )
    group.addoption(
        "--mlexp-tag",
        dest="mlexp_tags",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="Tag every run with KEY=VALUE (repeatable; default: no tag of yours).",
    )
    group.addoption(
        "--mlexp-config",
        dest="mlexp_config",
        metavar="PATH",
        default=None,
        help="YAML settings file (default: mlexp.yaml in the rootdir, when present).",
    )
    parser.addini("mlexp_tracking_uri", "MLflow tracking URI for experiment runs.", default="")
    parser.addini("mlexp_experiment", "MLflow experiment name for experiment runs.", default="")
    parser.addini("mlexp_tags", "KEY=VALUE tags for every run, one per line.", type="linelist")
    parser.addini("mlexp_config", "Path of the mlexp YAML settings file.", default="")


def add_grid_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-best-metric",
        dest="mlexp_best_metric",
        metavar="NAME[:max|min]",
        default=None,
        help="Metric that picks a grid's best cell (default: the first metric; "
        "direction guessed from the name, e.g. loss/rmse: min, r2/accuracy: max).",
    )
    parser.addini("mlexp_best_metric", "Metric that picks a grid's best cell.", default="")


def add_spool_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-on-tracking-error",
        dest="mlexp_on_tracking_error",
        metavar="fail|spool",
        default=None,
        help="When the tracking server is lost mid-session (after retries): fail the item "
        "(default), or spool the run to .mlexp/journal for `mlexp sync`.",
    )
    parser.addini(
        "mlexp_on_tracking_error", "fail or spool, when the tracking server is lost.", default=""
    )


def add_lineage_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-lineage",
        dest="mlexp_lineage",
        metavar="PARTS",
        action="append",
        default=None,
        help="Lineage logged with every run: any of code, git, env (comma separated), "
        "all or none (default: all).",
    )
    parser.addini(
        "mlexp_lineage", "Lineage parts to log: code, git, env, all or none.", type="linelist"
    )


def add_artifact_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-artifacts",
        dest="mlexp_artifacts",
        metavar="on|off",
        default=None,
        help="Upload the files each run creates (default: on).",
    )
    group.addoption(
        "--mlexp-artifact-root",
        dest="mlexp_artifact_roots",
        metavar="DIR",
        action="append",
        default=None,
        help="Directory watched for new files (repeatable; default: the rootdir; none: "
        "only tmp_path and mlflow_run.output_dir).",
    )
    group.addoption(
        "--mlexp-artifact-pattern",
        dest="mlexp_artifact_patterns",
        metavar="GLOB",
        action="append",
        default=None,
        help="File pattern to upload (repeatable; replaces the default list: "
        "*.h5, *.pkl, *.joblib, *.model, *.png, *.json, *.keras, *.pt, *.pth, *.onnx, "
        "*.safetensors, *.pickle, *.svg, *.html, *.csv).",
    )
    group.addoption(
        "--mlexp-artifact-exclude",
        dest="mlexp_artifact_exclude",
        metavar="GLOB",
        action="append",
        default=None,
        help="File or directory pattern never uploaded (repeatable; default: none).",
    )
    group.addoption(
        "--mlexp-artifact-max-size",
        dest="mlexp_artifact_max_size",
        metavar="SIZE",
        default=None,
        help="Larger files are not uploaded, with a warning (default: 100MB; 0: no limit).",
    )
    parser.addini("mlexp_artifacts", "Upload the files each run creates (on/off).", default="")
    parser.addini("mlexp_artifact_roots", "Directories watched for new files.", type="linelist")
    parser.addini("mlexp_artifact_patterns", "File patterns to upload.", type="linelist")
    parser.addini("mlexp_artifact_exclude", "Patterns never uploaded.", type="linelist")
    parser.addini("mlexp_artifact_max_size", "Size cap of discovered files.", default="")


def add_autolog_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-autolog",
        dest="mlexp_autolog",
        metavar="on|off",
        default=None,
        help="Switch mlflow.autolog() on for tracked items (default: off).",
    )
    parser.addini("mlexp_autolog", "Switch mlflow.autolog() on for tracked items.", default="")


def add_gate_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-baseline",
        dest="mlexp_baseline",
        metavar="SPEC",
        default=None,
        help="Compare each experiment's metrics with a run from the store: latest, "
        "branch:NAME (runs from a clean tree; branch:NAME:dirty also others), promoted, "
        "tag:KEY=VALUE, session:ID or run:ID (default: none: "
        "only expect= bounds are judged).",
    )
    group.addoption(
        "--mlexp-baseline-file",
        dest="mlexp_baseline_file",
        metavar="PATH",
        default=None,
        help="Compare with the metrics in this YAML file (test id -> metrics; default: none).",
    )
    group.addoption(
        "--mlexp-update-baseline",
        dest="mlexp_update_baseline",
        action="store_true",
        default=False,
        help="Write this session's metrics into the baseline file instead of comparing "
        "(default: off).",
    )
    group.addoption(
        "--mlexp-require-baseline",
        dest="mlexp_require_baseline",
        action="store_true",
        default=False,
        help="Fail experiments that have no baseline (default: pass with a note).",
    )
    group.addoption(
        "--mlexp-promote-baseline",
        dest="mlexp_promote_baseline",
        action="store_true",
        default=False,
        help="Tag this session's passed runs as the baseline (--mlexp-baseline promoted; "
        "default: off).",
    )
    group.addoption(
        "--mlexp-tolerance",
        dest="mlexp_tolerance",
        metavar="TOL",
        default=None,
        # argparse formats help with %: every literal % is doubled.
        help=f"How much worse than the baseline a metric may get (default "
        f"{DEFAULT_TOLERANCE_TEXT.replace('%', '%%')}): "
        "0.01, 2%%, '2 std', '0.01 or 2%%'.",
    )
    group.addoption(
        "--mlexp-report-md",
        dest="mlexp_report_md",
        metavar="PATH",
        default=None,
        help="Write the metric verdicts as a markdown table (also appended to "
        "$GITHUB_STEP_SUMMARY when set; default: none).",
    )
    group.addoption(
        "--mlexp-gate",
        dest="mlexp_gate",
        metavar="bound|mean",
        default=None,
        help="How a repeated cell is judged against a baseline with seeds: bound (default), "
        "a one-sided confidence bound of the difference of the means; mean, the plain "
        "difference of the means.",
    )
    group.addoption(
        "--mlexp-confidence",
        dest="mlexp_confidence",
        metavar="LEVEL",
        default=None,
        help="Confidence of the bound that judges repeated cells (default: 0.95).",
    )
    group.addoption(
        "--mlexp-gate-strict",
        dest="mlexp_gate_strict",
        action="store_const",
        const="true",
        default=None,
        help="Fail the session on an inconclusive verdict (too few seeds to decide), not only "
        "on a regression (default: off).",
    )
    parser.addini("mlexp_baseline", "Baseline runs to compare with (see --mlexp-baseline).")
    parser.addini("mlexp_baseline_file", "Baseline file to compare with (test id -> metrics).")
    parser.addini("mlexp_require_baseline", "Fail experiments that have no baseline.", type="bool")
    parser.addini("mlexp_tolerance", "Default tolerance for every metric, e.g. 1% or 0.01.")
    parser.addini(
        "mlexp_tolerances",
        "Tolerance per metric, one METRIC=TOL a line (default: mlexp_tolerance for every metric).",
        type="linelist",
    )
    parser.addini(
        "mlexp_directions",
        "Direction per metric, one METRIC=up|down|ignore a line (default: guessed from the "
        "name: accuracy, f1, auc, r2, score... up; loss, rmse, mae, error... down; others "
        "not gated).",
        type="linelist",
    )
    parser.addini("mlexp_gate", "How repeated cells are judged: bound or mean.")
    parser.addini("mlexp_confidence", "Confidence of the bound that judges repeated cells.")
    parser.addini("mlexp_gate_strict", "Fail the session on inconclusive verdicts.")
    group.addoption(
        "--mlexp-seed-budget",
        dest="mlexp_seed_budget",
        metavar="N",
        default=None,
        help="Seeds on demand: a repeated cell (repeats=5) still inconclusive after its seeds "
        "runs as many more, batch by batch, until the gate decides or N seeds ran "
        "(default: none, the repeats alone; a marker's repeats=(5, 20) sets its own).",
    )
    parser.addini(
        "mlexp_seed_budget", "Most seeds of an undecided repeated cell (see --mlexp-seed-budget)."
    )
    group.addoption(
        "--mlexp-judge",
        dest="mlexp_judge",
        metavar="METRIC,...",
        default=None,
        help="The metrics the gate judges, comma-separated (default: returned metrics, "
        "metrics logged once, and those named by expect=, a direction or a tolerance; "
        "a history logged at several steps is only recorded).",
    )
    parser.addini(
        "mlexp_judge",
        "The metrics the gate judges, comma-separated or one a line (default: returned "
        "and logged-once metrics, and those named by a rule).",
        type="args",
    )


def add_report_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-html",
        dest="mlexp_html",
        metavar="PATH",
        default=None,
        help="Write a self-contained HTML report of this session's runs (tables, Plotly "
        "plots) to PATH, and log it as an artifact of the session (default: none).",
    )
    group.addoption(
        "--mlexp-figures",
        dest="mlexp_figures",
        metavar="inline|cdn",
        default=None,
        help="How figures logged as HTML load plotly.js: inline, in every file (works "
        "offline, the default), or from its CDN (a few kB a figure).",
    )
    parser.addini("mlexp_html", "Path of the session's HTML report (see --mlexp-html).", default="")
    parser.addini("mlexp_figures", "How HTML figures load plotly.js: inline or cdn.", default="")


def add_params_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-params-file",
        dest="mlexp_params_file",
        metavar="PATH",
        default=None,
        help="YAML file of fixed values and grids per experiment function (default: "
        "experiments/params.yaml in the rootdir, when present; none: no params file).",
    )
    group.addoption(
        "--mlexp-set",
        dest="mlexp_set",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="Override a value of the params file (repeatable): alpha=0.5 for every function "
        "that has alpha, experiment_ridge.alpha=0.5 for one; a YAML list makes a grid axis: "
        "alpha=[0.5,2] (default: none).",
    )
    parser.addini("mlexp_params_file", "Path of the params file (see --mlexp-params-file).")


def add_search_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-search-storage",
        dest="mlexp_search_storage",
        metavar="URL",
        default=None,
        help="Storage of the Optuna studies of searches, shared by workers, CI shards and a "
        "team: a database URL, e.g. postgresql+psycopg://user@host/optuna, or grpc://host:port "
        "for Optuna's gRPC storage proxy (default: MLEXP_SEARCH_STORAGE, ini "
        "mlexp_search_storage, else journal files under .mlexp/optuna in the rootdir).",
    )
    parser.addini(
        "mlexp_search_storage",
        "Storage URL of the searches' Optuna studies (database or grpc://host:port).",
        default="",
    )


def add_model_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-register-alias",
        dest="mlexp_register_alias",
        metavar="ALIAS",
        default=None,
        help="Alias given to the model versions registered at session end "
        f"(default: {DEFAULT_REGISTER_ALIAS}).",
    )
    group.addoption(
        "--mlexp-no-register",
        dest="mlexp_no_register",
        action="store_true",
        default=False,
        help="Register no model in this session (e.g. on pull requests), whatever "
        "register= and mlexp_register say (default: off).",
    )
    parser.addini(
        "mlexp_register",
        "Registered model per experiment function, one TEST=NAME a line "
        "(TEST: the function's name or node id; default: none, or the marker's register=).",
        type="linelist",
    )
    group.addoption(
        "--mlexp-keep-models",
        dest="mlexp_keep_models",
        metavar="K|all",
        default=None,
        help="Keep logged models only for the best K members of each grid or search, "
        "removing the others' model artifacts at session end; never a registered "
        "version's (default: all).",
    )
    parser.addini("mlexp_register_alias", "Alias of the model versions registered at session end.")
    parser.addini("mlexp_keep_models", "Keep models of the best K members only (K or all).")


def add_reuse_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-reuse",
        dest="mlexp_reuse",
        action="store_const",
        const="true",
        default=None,
        help="Do not execute an experiment whose fingerprint (test id, params, code, declared "
        "inputs, environment) equals that of its latest finished run: record a run copying "
        "that run's results instead (also ini mlexp_reuse, env MLEXP_REUSE; default: off).",
    )
    group.addoption(
        "--mlexp-rerun",
        dest="mlexp_rerun",
        action="store_true",
        default=False,
        help="Execute every experiment even when reuse is on by configuration (default: off).",
    )
    parser.addini("mlexp_reuse", "Reuse unchanged experiments' runs (see --mlexp-reuse).")
    parser.addini(
        "mlexp_inputs",
        "Data files every experiment reads, one glob a line from the rootdir: hashed into "
        "the runs' fingerprints and logged as their datasets (default: none).",
        type="linelist",
    )


#: The environment variable naming the Ray cluster, like ``--mlexp-ray``.
RAY_ENV = "MLEXP_RAY"
#: The environment variable switching Slurm on (or naming its partition), like ``--mlexp-slurm``.
SLURM_ENV = "MLEXP_SLURM"
#: The settings file read from the rootdir unless ``--mlexp-config`` names another.
DEFAULT_CONFIG_FILE = "mlexp.yaml"


def may_ask_for_cluster(config: pytest.Config) -> bool:
    """Whether any source could switch a cluster on: a cluster flag, env or ini key, or a
    settings file; ``False`` means none does, with no settings module imported.

    Every pytest run asks this at configure: ``settings.cluster.cluster_requested`` then
    reads the switches themselves.
    """
    for option, env in (("mlexp_ray", RAY_ENV), ("mlexp_slurm", SLURM_ENV)):
        if config.getoption(option) or os.environ.get(env, "").strip() or config.getini(option):
            return True
    if config.getoption("mlexp_config") or str(config.getini("mlexp_config")).strip():
        return True
    return (config.rootpath / DEFAULT_CONFIG_FILE).exists()


def add_cluster_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-ray",
        dest="mlexp_ray",
        metavar="ADDRESS",
        default=None,
        help="Run the session's items on a Ray cluster: auto, HOST:PORT or "
        "ray://HOST:10001 (also env MLEXP_RAY; needs pytest-mlexp[ray]; default: off, items run "
        "here).",
    )
    parser.addini("mlexp_ray", "Address of the Ray cluster that runs the items.", default="")
    group.addoption(
        "--mlexp-slurm",
        dest="mlexp_slurm",
        metavar="PARTITION",
        nargs="?",
        const="on",
        default=None,
        help="Run the session's items as Slurm jobs through submitit, in PARTITION or the "
        "cluster's default one (also env MLEXP_SLURM; needs pytest-mlexp[slurm]; default: off, "
        "items run here).",
    )
    parser.addini("mlexp_slurm", "Run the items as Slurm jobs: on, off or a partition.", default="")
    parser.addini(
        "mlexp_slurm_options",
        "sbatch options of every Slurm job, one KEY=VALUE a line (time=120 in minutes, "
        "account=lab, qos=normal, or any sbatch option by its long name; default: none).",
        type="linelist",
    )
    parser.addini(
        "mlexp_resources",
        "What the cluster reserves for each item unless its marker says, one KEY=VALUE a "
        "line (GPU=1, CPU=4, memory=8GB, or a custom resource; default: CPU=1).",
        type="linelist",
    )


def add_system_metrics_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-system-metrics",
        dest="mlexp_system_metrics",
        action="store_const",
        const="true",
        default=None,
        help="Log MLflow's system metrics (CPU, memory, GPU with pynvml) with every run "
        "(needs psutil; default: off).",
    )
    parser.addini("mlexp_system_metrics", "Log MLflow's system metrics with every run.")


def add_collection_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-experiment-paths",
        dest="mlexp_experiment_paths",
        metavar="DIR[,DIR]",
        action="append",
        default=None,
        help="Folders whose experiment_*.py files and experiment_* functions are collected "
        "(default: MLEXP_EXPERIMENT_PATHS, ini mlexp_experiment_paths, else experiments/ "
        "in the rootdir). A file named on the command line is collected wherever it is.",
    )
    parser.addini(
        "mlexp_experiment_paths",
        "Folders (from the rootdir) whose experiment_* files and functions are collected.",
        type="linelist",
    )
