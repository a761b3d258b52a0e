"""Every kind of tracking URI fails fast and safely where its store is not there: one message
naming the URI with the password redacted, within 30 s, no traceback, nothing kept."""

import time

import pytest

from bnlab.tracking.store import redact, redact_text, server_credentials, store_uri

from helpers import make_mnist, make_project, project_env, run
from servers import free_port

SECRET = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_project(
        tmp_path_factory.mktemp("uris") / "proj",
        make_mnist(200, 50),
        {"epochs": 1, "seeds": [0], "hidden_units": [8], "probes": None},
    )
    run(["dvc", "repro", "split"], root)
    return root


@pytest.mark.parametrize(
    "template, shown",
    [
        (
            "http://alice:{pw}@127.0.0.1:{port}",
            "MLflow tracking server http://alice:***@127.0.0.1:{port} is unreachable",
        ),
        (
            "postgresql+psycopg2://mlflow:{pw}@127.0.0.1:{port}/mlflow",
            "MLflow tracking store postgresql+psycopg2://mlflow:***@127.0.0.1:{port}/mlflow is unreachable",
        ),
        (
            "postgresql://mlflow:{pw}@127.0.0.1:{port}/mlflow",
            "MLflow tracking store postgresql://mlflow:***@127.0.0.1:{port}/mlflow is unreachable",
        ),
        ("http://127.0.0.1:{port}", "MLflow tracking server http://127.0.0.1:{port} is unreachable"),
    ],
)
def test_an_absent_store_fails_fast_with_its_password_redacted(prepared, template, shown):
    port = free_port()  # nothing listens there
    env = project_env()
    env["MLFLOW_TRACKING_URI"] = template.format(pw=SECRET, port=port)
    started = time.monotonic()
    done = run(["bnlab", "train", "notebook"], prepared, env=env, check=False)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert shown.format(port=port) in done.stderr
    assert SECRET not in done.stderr + done.stdout and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (prepared / "models/notebook").exists()


def test_uris_are_redacted_and_postgresql_gets_the_installed_driver():
    assert redact(f"https://bob:{SECRET}@mlflow.example:8443/x") == "https://bob:***@mlflow.example:8443/x"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert redact_text(f"failed for {SECRET}!", f"http://a:{SECRET}@h") == "failed for ***!"
    assert store_uri("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert store_uri("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert store_uri("http://h:5000") == "http://h:5000"
    assert store_uri(f"https://bob:{SECRET}@h:8443/x") == "https://h:8443/x"
    assert server_credentials(f"https://bob:{SECRET}@h:8443") == {
        "MLFLOW_TRACKING_USERNAME": "bob",
        "MLFLOW_TRACKING_PASSWORD": SECRET,
    }
    assert server_credentials("http://h:5000") == {} == server_credentials("sqlite:///x.db")
