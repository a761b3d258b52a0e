"""The registry's champion, served by the real `mlflow models serve` (through `bnlab serve`),
answers real HTTP requests with the evaluate stage's very predictions of that seed, and logs
nothing but access lines."""

import json
import re
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from bnlab.data import splits

from helpers import PROJECT, make_mnist, make_project, run, store_env
from servers import free_port, stop, wait_for_health

N_TEST = 10_000
ACCESS_LINE = re.compile(r'^INFO:\s+127\.0\.0\.1:\d+ - "(POST /invocations|GET /health) HTTP/1\.1" \d{3}')


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = make_project(
        tmp_path_factory.mktemp("serving") / "proj",
        make_mnist(600, N_TEST),
        {"epochs": 1, "seeds": [0, 1], "hidden_units": [16], "probes": None},
    )
    run(["dvc", "repro", "report@notebook"], root, env=store_env())
    return root


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def champion_seed(root) -> int:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return int(client.get_model_version_by_alias("bnlab-notebook-batchnorm", "champion").tags["seed"])


@pytest.mark.slow
def test_the_served_model_gives_the_pipelines_predictions_quietly(evaluated):
    root = evaluated
    port = free_port()
    log = root / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            ["bnlab", "serve", "--port", str(port)],
            cwd=root,
            env=store_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, seconds=120)
        assert log.read_text().startswith("serving models:/bnlab-notebook-batchnorm@champion (version ")
        started = len(log.read_text().splitlines())
        x_test, _ = splits.load_split(root / "data/prepared/test.npz")
        pixels = x_test.reshape(len(x_test), -1).astype(np.float32)
        digits, probabilities = [], []
        for chunk in np.array_split(pixels, 4):  # 10,000 images in 4 requests
            status, answer = post(url, {"inputs": {"pixels": chunk.tolist()}})
            assert status == 200
            digits.extend(answer["predictions"])
            status, answer = post(url, {"inputs": {"pixels": chunk.tolist()}, "params": {"output": "probabilities"}})
            assert status == 200
            probabilities.extend(answer["predictions"])
        status, answer = post(url, {"inputs": {"pixels": pixels[:2].tolist()}, "params": {"output": "logits"}})
        served_log = log.read_text().splitlines()[started:]
    finally:
        stop(server)

    predictions = pd.read_csv(root / "eval/notebook/predictions.csv")
    expected = predictions.query(f"variant == 'batchnorm' and seed == {champion_seed(root)}")["predicted"].to_numpy()
    assert len(digits) == N_TEST and np.array_equal(np.array(digits), expected)
    probabilities = np.array(probabilities)
    assert probabilities.shape == (N_TEST, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(probabilities.argmax(axis=1), expected)
    assert status == 400 and "must be one of digit, probabilities, not 'logits'" in answer["message"]
    noise = [line for line in served_log if line.strip() and not ACCESS_LINE.match(line)]
    assert not noise, "the server logged more than access lines:\n" + "\n".join(noise[:20])


def test_serving_a_model_that_was_never_registered_says_how_to_register_it(tmp_path):
    root = make_project(tmp_path / "proj", make_mnist(60, 20))
    done = run(["bnlab", "serve", "notebook", "--seed", "0"], root, env=store_env(), check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "bnlab serve: error: the registry has no models:/bnlab-notebook-batchnorm@seed-0: "
        "the report stage registers it (`make run`, or `dvc repro report@notebook`)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["notebook", "--variant", "bn"], "experiment 'notebook' has no variant 'bn'; choose one of batchnorm, plain"),
        (["notebook", "--seed", "99"], "experiment 'notebook' has no seed 99; choose one of "),
        (["lr_sweep"], "experiment 'lr_sweep' has a grid, so its models are not registered"),
    ],
)
def test_a_model_the_params_do_not_declare_is_refused_by_name(args, message, capsys):
    from bnlab.pipeline import serve

    assert serve.main([*args, "--params", str(PROJECT / "params.yaml")]) == 2  # a usage error
    assert message in capsys.readouterr().err
