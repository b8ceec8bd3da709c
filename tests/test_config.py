"""Configuration: one precedence order, and a clear error for every bad value."""

from __future__ import annotations

import shutil

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics

SOURCES = ("cli", "env", "ini", "yaml")


def configure(ourtester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sources) -> list[str]:
    """Set the experiment and the store in each of ``sources``; return the CLI args."""
    args = ["-p", "no:randomly"]
    if "cli" in sources:
        args += ["--mlexp-experiment", "from-cli", "--mlexp-tracking-uri", "sqlite:///cli.db"]
    if "env" in sources:
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    ini = "[pytest]\n"
    if "ini" in sources:
        ini += "mlexp_experiment = from-ini\nmlexp_tracking_uri = sqlite:///ini.db\n"
    ourtester.makeini(ini)
    if "yaml" in sources:
        ourtester.path.joinpath("mlexp.yaml").write_text(
            "experiment: from-yaml\ntracking_uri: sqlite:///yaml.db\n"
        )
    return args


@pytest.mark.parametrize(
    "sources",
    [SOURCES, SOURCES[1:], SOURCES[2:], SOURCES[3:], ()],
    ids=["all", "env-ini-yaml", "ini-yaml", "yaml", "none"],
)
def test_precedence_cli_env_ini_yaml_default(
    ourtester, monkeypatch, read_runs, empty_store, sources
):
    ourtester.makepyfile(experiment_where="def experiment_where(): return {'x': 1}")
    args = configure(ourtester, monkeypatch, sources)
    winner = sources[0] if sources else None
    experiment = f"from-{winner}" if winner else ourtester.path.name
    database = f"{winner}.db" if winner else "mlflow.db"
    # The winner's tables exist (creating them is most of the session); a loser's store
    # would still be a new file.
    shutil.copy(empty_store, ourtester.path / database)
    result = ourtester.runpytest(*args)
    result.assert_outcomes(passed=1)

    source = {
        "cli": "--mlexp-tracking-uri",
        "env": "MLFLOW_TRACKING_URI",
        "ini": "ini mlexp_tracking_uri",
        "yaml": "mlexp.yaml tracking_uri",
        None: "default",
    }[winner]
    result.stdout.fnmatch_lines([f"mlexp: tracking sqlite:///*{database} ({source}), *"])
    # Only the winning store was written.
    written = sorted(p.name for p in ourtester.path.glob("*.db"))
    assert written == [database]
    (run,) = read_runs(experiment, f"sqlite:///{ourtester.path / database}")
    assert logged_metrics(run) == {"x": 1}


def test_relative_sqlite_in_ini_is_anchored_at_rootdir(ourtester):
    ourtester.makeini("[pytest]\nmlexp_tracking_uri = sqlite:///stores/runs.db\n")
    sub = ourtester.mkdir("sub")
    sub.joinpath("experiment_a.py").write_text("def experiment_a(): pass\n")
    result = ourtester.runpytest("sub", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert (ourtester.path / "stores" / "runs.db").exists()


def test_default_store_is_anchored_at_rootdir_not_cwd(ourtester):
    sub = ourtester.mkdir("sub")
    sub.joinpath("experiment_a.py").write_text("def experiment_a(): pass\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = ourtester.runpytest(".", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert (ourtester.path / "mlflow.db").exists()
    assert not (sub / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(ourtester.path.name)
    assert (
        experiment.artifact_location == (ourtester.path / "mlruns" / ourtester.path.name).as_uri()
    )


def test_tags_merge_across_sources_higher_wins(ourtester, read_runs, empty_store):
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    ourtester.makeini("[pytest]\nmlexp_tags =\n    team=ini\n    stage=dev\n")
    ourtester.path.joinpath("mlexp.yaml").write_text(
        "experiment: tagged\ntags:\n  team: yaml\n  owner: ana\n"
    )
    ourtester.makepyfile(experiment_t="def experiment_t(): pass")
    result = ourtester.runpytest("-p", "no:randomly", "--mlexp-tag", "stage=ci")
    result.assert_outcomes(passed=1)
    (run,) = read_runs("tagged")
    tags = run.data.tags
    assert (tags["team"], tags["stage"], tags["owner"]) == ("ini", "ci", "ana")


def test_explicit_config_file(ourtester, read_runs, empty_store):
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    ourtester.mkdir("conf").joinpath("exp.yml").write_text("experiment: from-explicit\n")
    ourtester.makepyfile(experiment_e="def experiment_e(): pass")
    result = ourtester.runpytest("-p", "no:randomly", "--mlexp-config", "conf/exp.yml")
    result.assert_outcomes(passed=1)
    assert len(read_runs("from-explicit")) == 1


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        pytest.param(
            {"mlexp.yaml": "trackin_uri: sqlite:///x.db\n"},
            [],
            "ERROR: */mlexp.yaml: unknown key 'trackin_uri'; "
            "accepted keys: tracking_uri, experiment, tags*",
            id="unknown-yaml-key",
        ),
        pytest.param(
            {"mlexp.yaml": "- just\n- a list\n"},
            [],
            "ERROR: */mlexp.yaml: expected a mapping of settings at the top level, got list",
            id="yaml-not-a-mapping",
        ),
        pytest.param(
            {"mlexp.yaml": "experiment: [unclosed\n"},
            [],
            "ERROR: */mlexp.yaml: not valid YAML:*",
            id="yaml-syntax",
        ),
        pytest.param(
            {"mlexp.yaml": "tags: [a, b]\n"},
            [],
            "ERROR: mlexp.yaml: tags must be a mapping of KEY: VALUE, got list",
            id="yaml-tags-not-mapping",
        ),
        pytest.param(
            {},
            ["--mlexp-tag", "team"],
            "ERROR: --mlexp-tag: malformed tag 'team'; expected KEY=VALUE, e.g. team=vision",
            id="malformed-cli-tag",
        ),
        pytest.param(
            {"tox.ini": "[pytest]\nmlexp_tags = =oops\n"},
            [],
            "ERROR: ini mlexp_tags: malformed tag '=oops'; expected KEY=VALUE, e.g. team=vision",
            id="malformed-ini-tag",
        ),
        pytest.param(
            {},
            ["--mlexp-tracking-uri", "ftp://user:hunter2@host/runs"],
            "ERROR: --mlexp-tracking-uri: unsupported tracking URI 'ftp://user:***@host/runs' "
            "(scheme 'ftp'); accepted forms: sqlite:///path/to/mlflow.db, http(s)://host:port, *",
            id="bad-scheme",
        ),
        pytest.param(
            {"tox.ini": "[pytest]\nmlexp_tracking_uri = ./runs\n"},
            [],
            "ERROR: ini mlexp_tracking_uri: unsupported tracking URI './runs' (no scheme); *",
            id="bare-path",
        ),
        pytest.param(
            {},
            ["--mlexp-tracking-uri", "file:///tmp/mlruns"],
            "ERROR: --mlexp-tracking-uri: the file store 'file:///tmp/mlruns' is deprecated in "
            "MLflow 3 and refused unless MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///*",
            id="file-store",
        ),
        pytest.param(
            {},
            ["--mlexp-figures", "svg"],
            "ERROR: --mlexp-figures: invalid value 'svg' for figures; accepted: inline *or cdn *",
            id="bad-figures",
        ),
        pytest.param(
            {"mlexp.yaml": "keep_models: 0\n"},
            [],
            "ERROR: mlexp.yaml keep_models: invalid value 0 for keep_models; accepted: a whole "
            "number of best members whose models are kept (at least 1, e.g. 3), or all",
            id="bad-keep-models",
        ),
        pytest.param(
            {},
            ["--mlexp-config", "missing.yaml"],
            "ERROR: --mlexp-config: */missing.yaml does not exist; "
            "give the path of an mlexp YAML file",
            id="missing-config-file",
        ),
    ],
)
def test_bad_configuration_stops_the_session(ourtester, setup, args, message):
    for name, content in setup.items():
        ourtester.path.joinpath(name).write_text(content)
    ourtester.makepyfile(experiment_never="def experiment_never(): pass")
    result = ourtester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "hunter2" not in result.stderr.str() + result.stdout.str()
    assert not (ourtester.path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "mlexp(experment='x')",
            "ERROR: @pytest.mark.mlexp on test_m.py::test_m: unknown argument 'experment'; "
            "accepted: experiment, tags*",
        ),
        (
            "mlexp('x')",
            "ERROR: @pytest.mark.mlexp on test_m.py::test_m: takes keyword arguments only*",
        ),
        (
            "mlexp(tags=['a'])",
            "ERROR: @pytest.mark.mlexp on test_m.py::test_m: tags must be a dict such as "
            "tags={'team': 'vision'}, got ['a']",
        ),
        (
            "mlexp(experiment='')",
            "ERROR: @pytest.mark.mlexp on test_m.py::test_m: experiment must be a non-empty "
            "string, got ''",
        ),
    ],
)
def test_bad_marker_stops_the_session_at_collection(ourtester, marker, message):
    ourtester.makepyfile(
        test_m=f"""
        import pytest

        @pytest.mark.{marker}
        def test_m():
            pass
        """
    )
    result = ourtester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (ourtester.path / "mlflow.db").exists()


def test_unreachable_server_stops_before_any_experiment(ourtester, unused_port):
    port = unused_port
    ourtester.makepyfile(
        experiment_never="""
        def experiment_never():
            open("ran.txt", "w").close()
        """
    )
    result = ourtester.runpytest("--mlexp-tracking-uri", f"http://bob:s3cret@127.0.0.1:{port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: mlexp: tracking server http://bob:***@127.0.0.1:{port} "
            "(from --mlexp-tracking-uri) is unreachable: *Connection refused*. "
            "Check that `mlflow server` is running and the host and port are right, *"
        ]
    )
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
    assert not (ourtester.path / "ran.txt").exists()


def test_help_lists_the_options(ourtester):
    result = ourtester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "experiment tracking with MLflow (pytest-mlexp):",
            "  --mlexp-tracking-uri=URI",
            "  --mlexp-experiment=NAME",
            "  --mlexp-tag=KEY=VALUE*",
            "  --mlexp-config=PATH*",
        ]
    )
    # Every feature's options are in the same group, their help renders.
    result.stdout.fnmatch_lines(
        [
            "  --mlexp-baseline=SPEC*",
            "  --mlexp-tolerance=TOL*",
            "*How much worse than the baseline a metric may get",
            "*(default 1%): 0.01, 2%, '2 std', '0.01 or 2%'.",
        ]
    )
