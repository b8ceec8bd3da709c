"""Every tag name pytest-mlexp writes or reads, in one place.

``mlexp.*`` tags are the plugin's own; ``mlflow.*`` tags are MLflow's, which
the MLflow UI shows in its own columns (user, source, parent, git commit).
"""

from __future__ import annotations

# -- MLflow's own ---------------------------------------------------------------------
#: The run's name: the item's name, e.g. ``experiment_ridge[0.1]``; a group run's ``<function> ·
#: <start> · <commit>``.
RUN_NAME = "mlflow.runName"
#: The group run (grid parent, cell run, search parent) a run belongs to.
PARENT_RUN_ID = "mlflow.parentRunId"
#: Who ran the session.
USER = "mlflow.user"
#: The experiment module, as a path from the rootdir; with its type (``LOCAL``).
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
#: Git lineage: the commit, branch and remote URL (without credentials) of the rootdir's repository.
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
#: A run's description, shown (as markdown) on its page in the UI.
NOTE = "mlflow.note.content"
#: An experiment tag MLflow 3's UI reads to tell model training from GenAI work; the value
#: for classic model training.
EXPERIMENT_KIND = "mlflow.experimentKind"
KIND_MODEL_DEVELOPMENT = "custom_model_development"
#: Experiment tags holding the UI's saved views of the runs table (``<prefix><key>``).
SAVED_VIEW_PREFIX = "mlflow.sharedViewState."

# -- every run of a tracked item --------------------------------------------------------
#: The pytest node id of the item the run records.
NODEID = "mlexp.nodeid"
#: The pytest session that made the run (``MLEXP_SESSION_ID`` or time + random suffix).
SESSION_ID = "mlexp.session_id"
#: pytest's outcome: passed, failed, error, skipped, xfailed, xpassed, interrupted.
OUTCOME = "mlexp.outcome"
#: The one-line reason of a failure.
ERROR = "mlexp.error"
#: pytest-rerunfailures: which attempt of the item the run is (1, 2...).
ATTEMPT = "mlexp.attempt"
#: The outcome of an attempt superseded by a rerun: counted by its last attempt only.
OUTCOME_RERUN = "rerun"
#: The machine and process that own a run, so a dead process's runs can be closed.
HOST = "mlexp.host"
PID = "mlexp.pid"

# -- group runs (grid parents, repeated cells, the session's report run) ---------------
#: What a group run holds; runs of items have no kind.
KIND = "mlexp.kind"
KIND_GRID = "grid"
KIND_CELL = "cell"
KIND_SESSION = "session"
#: Kinds of runs that hold other runs' results rather than an item's.
CONTAINER_KINDS = frozenset({KIND_SESSION, KIND_GRID, "parent", "search"})
#: On the run holding the session's HTML report (value ``html``): not an experiment's run.
REPORT = "mlexp.report"
#: Shared by every process looking for the same group run (a hash of session and key).
GROUP = "mlexp.group"
#: The grid's function (node id without parameters), on the parent and its cells.
GRID = "mlexp.grid"
#: A repeated cell's node id, on the cell run and its repeats.
CELL = "mlexp.cell"
#: The user property of an extra seed's report whose cell was decided before its turn
#: (``gate.sequential_runs``): it ran nothing and counts nowhere.
SEED_NOT_NEEDED = "mlexp.seed_not_needed"
#: On a group run: its members, and how many passed, failed and were killed.
GRID_SIZE = "mlexp.grid_size"
PASSED = "mlexp.passed"
FAILED = "mlexp.failed"
KILLED = "mlexp.killed"
#: On a group run: how many members the group has in the code (its grid's cells, its cell's
#: repeats), collected before any selection; more than ran when the session ran part of it.
MEMBERS = "mlexp.members"
#: On a group run the session ran only part of, for registration (``models.registry``): the
#: members that did not run, each with its latest earlier run of the current code (JSON, node
#: id -> run id, ``""`` when it has none).
MEMBERS_ELSEWHERE = "mlexp.members_elsewhere"
#: On a group run: the metric and direction that picked its best member, and that member's run id
#: and name.
BEST_METRIC = "mlexp.best_metric"
BEST_DIRECTION = "mlexp.best_direction"
BEST_RUN_ID = "mlexp.best_run_id"
BEST_RUN_NAME = "mlexp.best_run_name"
#: On a repeated cell's run: how many repeats ran, and how many passed.
REPEATS = "mlexp.repeats"
REPEATS_PASSED = "mlexp.repeats_passed"
#: Attempts of a group's runs superseded by a rerun (pytest-rerunfailures), not counted.
RERUNS = "mlexp.reruns"
#: Metrics of a grid parent: its cells, and how many passed and failed.
CELLS_METRIC = "mlexp.cells"
PASSED_METRIC = "mlexp.passed"
FAILED_METRIC = "mlexp.failed"
#: A grid parent's best cell's params and metrics are logged under this prefix.
BEST_PREFIX = "best."
#: ... and as tags under this one when a later CI shard found another best (params are final).
LATER_BEST_PREFIX = "mlexp.best."

# -- searches (Optuna) ----------------------------------------------------------------------
#: A search's parent run holds its trials.
KIND_SEARCH = "search"
#: The search's function (node id without parameters), on the parent and its trials.
SEARCH = "mlexp.search"
#: A trial's number in its Optuna study.
TRIAL = "mlexp.trial"
#: The mlexp.outcome of a trial the pruner stopped (its run ends FINISHED, pytest skips it).
OUTCOME_PRUNED = "pruned"
#: On a search's parent and trials: the Optuna study, its storage (password hidden), sampler and
#: pruner.
STUDY = "mlexp.search.study"
SEARCH_STORAGE = "mlexp.search.storage"
SAMPLER = "mlexp.search.sampler"
PRUNER = "mlexp.search.pruner"
#: The space as JSON (``search.space``), so reports can rebuild the study from the runs.
SPACE = "mlexp.search.space"
#: On a search's parent: the trials planned, run, complete, pruned and failed, and the best
#: trial's number.
TRIALS_PLANNED = "mlexp.search.trials_planned"
TRIALS = "mlexp.trials"
TRIALS_COMPLETE = "mlexp.trials_complete"
TRIALS_PRUNED = "mlexp.trials_pruned"
TRIALS_FAILED = "mlexp.trials_failed"
BEST_TRIAL = "mlexp.best_trial"
#: A search parent's space is logged as params under this prefix (``space.lr``).
SPACE_PREFIX = "space."

# -- the regression gate -----------------------------------------------------------------
#: The verdict: passed, improved, regressed or no-baseline.
VERDICT = "mlexp.regression"
#: The baseline a run was judged against: its source (``latest``, a file...) and run id.
BASELINE_SOURCE = "mlexp.baseline.source"
BASELINE_RUN_ID = "mlexp.baseline.run_id"
#: Set to ``true`` on runs promoted to be the baseline.
PROMOTED = "mlexp.baseline"
#: How a repeated cell was judged: ``bound`` (a confidence bound over its seeds) or ``mean``.
GATE_RULE = "mlexp.gate.rule"
#: The confidence interval of the difference from the baseline, with n on each side.
GATE_INTERVAL = "mlexp.regression.interval"

# -- lineage -------------------------------------------------------------------------------
#: Lineage: uncommitted changes in the repository (``true``/``false``), the Python version, the
#: platform, the pytest command line and the pytest-randomly seed.
GIT_DIRTY = "mlexp.git.dirty"
PYTHON_VERSION = "mlexp.python_version"
PLATFORM = "mlexp.platform"
COMMAND = "mlexp.command"
RANDOM_SEED = "mlexp.random_seed"

# -- params from a file ----------------------------------------------------------------------
#: The ``--mlexp-set`` overrides that changed the run's function, as given (shell-quoted).
OVERRIDES = "mlexp.overrides"

# -- clusters ----------------------------------------------------------------------------------
#: The node that ran the item, on runs of a cluster's session (``--mlexp-ray``: the Ray
#: node's id; ``--mlexp-slurm``: the Slurm node's name), and the cluster's backend.
CLUSTER_NODE = "mlexp.cluster.node"
CLUSTER_BACKEND = "mlexp.cluster.backend"
#: On a run ended KILLED because its cluster worker was lost: why, in the cluster's words
#: (Slurm's job state: ``CANCELLED by 0``, ``TIMEOUT``, ``NODE_FAIL``, ``PREEMPTED``).
CLUSTER_LOST = "mlexp.cluster.lost"

# -- reproduction ----------------------------------------------------------------------------
#: On every run made by ``mlexp reproduce`` (item and group runs): the id of the run it
#: reproduces. Such runs are never a baseline, a reuse source or an ordinary group's member
#: (``backend.search.NOT_REPRODUCTION``); their group runs are named ``reproduce of <name>``.
REPRODUCES = "mlexp.reproduces"

# -- the spool -------------------------------------------------------------------------------
#: A spooled run's journal id, so a replay cut short never creates it twice.
JOURNAL_ID = "mlexp.journal_id"

# -- models ------------------------------------------------------------------------------------
#: On the run whose logged model was registered: the registered model, version and alias.
REGISTERED_MODEL = "mlexp.registered_model"
REGISTERED_VERSION = "mlexp.registered_version"
REGISTERED_ALIAS = "mlexp.registered_alias"
#: On a registered model version (with SESSION_ID, NODEID, GIT_DIRTY, VERDICT, BASELINE_SOURCE).
VERSION_GIT_COMMIT = "mlexp.git.commit"
VERSION_RUN_NAME = "mlexp.run_name"
#: The metric that picked the best cell, e.g. ``accuracy=0.965 (max)``.
VERSION_BEST = "mlexp.best"
#: The best cell's metrics, one tag each: ``mlexp.metric.accuracy``.
VERSION_METRIC_PREFIX = "mlexp.metric."

# -- system metrics ----------------------------------------------------------------------------
#: MLflow's system metrics (``--mlexp-system-metrics``): the machine's, not the experiment's.
#: Never judged by the gate, copied by reuse, averaged into group runs nor listed as results.
SYSTEM_METRICS_PREFIX = "system/"

# -- reuse -------------------------------------------------------------------------------------
#: What a run's result depends on, hashed: equal fingerprints, same result (``--mlexp-reuse``).
FINGERPRINT = "mlexp.fingerprint"
#: The fingerprint's parts, one tag each: ``mlexp.fingerprint.code``...
FINGERPRINT_PREFIX = "mlexp.fingerprint."
#: The files behind the code and inputs parts, ``path=hash`` a line, to say which one changed.
FINGERPRINT_CODE_FILES = "mlexp.fingerprint.code_files"
FINGERPRINT_INPUT_FILES = "mlexp.fingerprint.input_files"
#: On a reused run: the run whose results it copies (the one that executed).
REUSED_FROM = "mlexp.reused_from"
#: The metrics the experiment returned, and those logged as a history (several
#: steps), comma-separated: the run's shape, which reuse copies with its values.
RETURNED = "mlexp.returned"
HISTORIES = "mlexp.histories"
#: The outcome of a reused run.
OUTCOME_REUSED = "reused"
