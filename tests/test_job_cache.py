"""Per-job caching (bnlab.job_cache): a new seed trains only its own jobs, the others come back
from the runs that trained them, byte for byte; a shared setting, the data or the code re-trains
everything."""

import shutil
import sqlite3
from urllib.parse import urlparse

import pytest
import yaml

from bnlab.tracking.job_cache import JOB_MODULE, code_fingerprint, job_key, runtime_fingerprint

from helpers import PROJECT, make_mnist, run, split_project, store_env

TINY = {"epochs": 2, "seeds": [0], "hidden_units": [8]}


def set_experiment(root, **changes):
    params = yaml.safe_load((root / "params.yaml").read_text())
    experiment = params["experiments"]["notebook"]
    for key, value in changes.items():
        if key in experiment:
            experiment[key] = value
        else:
            experiment["model"][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def weights(root) -> dict:
    return {p.parent.name: p.read_bytes() for p in sorted((root / "models/notebook").glob("*/weights.npz"))}


def tags(root, key: str) -> dict:
    with sqlite3.connect(root / "mlflow.db") as db:
        return dict(
            db.execute(
                "select r.name, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
                "where t.key = ? order by r.start_time",
                (key,),
            ).fetchall()
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = split_project(tmp_path_factory.mktemp("cache") / "proj", make_mnist(), TINY)
    done = run(["dvc", "repro", "train@notebook"], root, env=store_env())
    assert "2 jobs: 2 trained, 0 restored" in done.stdout
    return root, weights(root)


@pytest.mark.slow
def test_a_new_seed_trains_only_its_own_jobs(trained):
    root, before = trained
    set_experiment(root, seeds=[0, 1], learning_rate=0.01)  # the fixture's, plus a seed
    done = run(["dvc", "repro", "train@notebook"], root, env=store_env())
    assert "4 jobs: 2 trained, 2 restored from the runs that trained them before" in done.stdout
    assert sorted(line.split()[1] for line in done.stdout.splitlines() if line.startswith("trained ")) == [
        "notebook/batchnorm-seed1",
        "notebook/plain-seed1",
    ]
    after = weights(root)
    assert {name: after[name] for name in before} == before  # the restored models, byte for byte
    provenance = tags(root, "bnlab.provenance")  # the newest run of each name
    restored = {
        name: source for name, source in tags(root, "bnlab.source_run").items() if provenance[name] == "restored"
    }
    assert sorted(restored) == ["notebook/batchnorm-seed0", "notebook/plain-seed0"]
    # The restored runs point at the runs that trained them; the new jobs' runs are cache entries too.
    assert all(run_id in restored_run_ids(root, name) for name, run_id in restored.items())
    assert {f"notebook/{v}-seed{s}" for v in ("batchnorm", "plain") for s in (0, 1)} <= set(tags(root, "bnlab.job_key"))
    run(["dvc", "repro", "report@notebook"], root, env=store_env())  # evaluate finds the restored runs


def restored_run_ids(root, name: str) -> list[str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return [
            r
            for (r,) in db.execute(
                "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
                "where r.name = ? and t.key = 'bnlab.job_key'",
                (name,),
            )
        ]


@pytest.mark.slow
def test_a_shared_setting_retrains_every_job(trained):
    root, _ = trained
    set_experiment(root, seeds=[0], learning_rate=0.005)
    done = run(["dvc", "repro", "train@notebook"], root, env=store_env())
    assert "2 jobs: 2 trained, 0 restored" in done.stdout


@pytest.mark.slow
def test_a_cached_model_whose_files_are_gone_is_trained_again(trained):
    root, _ = trained
    set_experiment(root, seeds=[0], learning_rate=0.003)
    run(["dvc", "repro", "train@notebook"], root, env=store_env())
    with sqlite3.connect(root / "mlflow.db") as db:
        location = db.execute(
            "select artifact_uri from runs where name = 'notebook/plain-seed0' order by start_time desc"
        ).fetchone()[0]
    shutil.rmtree(urlparse(location).path + "/job")
    set_experiment(root, seeds=[0, 2], learning_rate=0.003)
    done = run(["dvc", "repro", "train@notebook"], root, env=store_env())
    assert "4 jobs: 3 trained, 1 restored" in done.stdout  # a new seed and the damaged one
    assert "could not restore notebook/plain-seed0 from run" in done.stdout
    assert "restored notebook/batchnorm-seed0 from run" in done.stdout
    assert "trained notebook/plain-seed0 " in done.stdout


def test_the_key_covers_every_input_of_a_job():
    base = {
        "settings": {"learning_rate": 0.01},
        "seed": 0,
        "probes": None,
        "data_fingerprint": "d",
        "code": "c",
        "runtime": {"tensorflow": "2.21"},
    }
    key = job_key(**base)
    assert job_key(**base) == key
    for change in (
        {"settings": {"learning_rate": 0.02}},
        {"seed": 1},
        {"probes": {"every_steps": 5}},
        {"data_fingerprint": "e"},
        {"code": "d"},
        {"runtime": {"tensorflow": "2.22"}},
    ):
        assert job_key(**{**base, **change}) != key, change


@pytest.fixture
def source_copy(tmp_path):
    """A copy of the package's source, to edit."""
    shutil.copytree(PROJECT / "src" / "bnlab", tmp_path / "src" / "bnlab", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src"


def edit(path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_the_code_fingerprint_covers_what_a_job_runs_and_nothing_else(source_copy):
    first = code_fingerprint.__wrapped__(JOB_MODULE, source_copy)
    for outside in ("analysis/figures.py", "pipeline/summary.py", "pipeline/stages/report.py"):
        edit(source_copy / "bnlab" / outside)
    assert code_fingerprint.__wrapped__(JOB_MODULE, source_copy) == first  # every job restored
    edit(source_copy / "bnlab" / "ml" / "loop.py")
    assert code_fingerprint.__wrapped__(JOB_MODULE, source_copy) != first


def test_the_code_fingerprint_does_not_depend_on_where_the_code_is_installed(source_copy, tmp_path):
    elsewhere = tmp_path / "site-packages"
    shutil.copytree(source_copy, elsewhere)
    assert code_fingerprint.__wrapped__(JOB_MODULE, elsewhere) == code_fingerprint.__wrapped__(JOB_MODULE, source_copy)


def test_the_runtime_key_holds_the_tensorflow_that_trains():
    from bnlab.ml.tf_runtime import runtime_settings, tf

    runtime = runtime_fingerprint(runtime_settings())
    assert runtime["tensorflow"] == tf.__version__ and tf.__version__[0].isdigit()
    assert runtime["keras"][0].isdigit() and runtime["numpy"][0].isdigit()


def test_the_runtime_key_holds_the_c_librarys_version():
    # Adam's step calls libm's powf: another glibc may give other last bits, so it gets other keys
    import platform

    from bnlab.ml.tf_runtime import runtime_settings

    runtime = runtime_fingerprint(runtime_settings())
    name, version = platform.libc_ver()
    assert runtime["libc"] == f"{name}-{version}" and version[0].isdigit()
    other = {**runtime, "libc": "glibc-2.41"}
    assert job_key({}, 0, None, "data", "code", runtime) != job_key({}, 0, None, "data", "code", other)
