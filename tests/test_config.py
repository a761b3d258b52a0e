import subprocess
import sys

import pytest
import yaml

from bnlab.config import ParamsError, load_params, parse_params
from conftest import PROJECT, project_env


def default_raw() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_project_params_load_with_the_reference_defaults():
    params = load_params(PROJECT / "params.yaml")
    assert params.split.val_size == 5000
    assert [s.kind for s in params.data.sources] == ["keras", "idx", "wheel", "local"]
    assert params.train.hidden_units == [32, 32]
    assert params.train.learning_rate == 0.01
    assert params.train.batch_size == 32 and params.train.epochs == 10


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("split", "val_size", 0, "split.val_size"),
        ("split", "val_size", 60000, "split.val_size"),
        ("split", "val_size", "5000", "split.val_size"),
        ("split", "method", "random", "split.method"),
        ("split", "vall_size", 10, "split.vall_size"),
        ("data", "timeout_s", -1, "data.timeout_s"),
        ("train", "epochs", 0, "train.epochs"),
        ("train", "learning_rate", 0, "train.learning_rate"),
        ("train", "activation", "relux", "train.activation"),
        ("train", "optimizer", "adamax9", "train.optimizer"),
        ("train", "seeds", [], "train.seeds"),
        ("train", "seeds", [1, 1], "train.seeds"),
        ("train", "hidden_units", [32, 0], "train.hidden_units.1"),
        ("train", "batch_norm", True, "train.batch_norm"),
    ],
)
def test_a_bad_value_is_named_with_its_key(section, key, value, expected):
    raw = default_raw()
    raw[section][key] = value
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    message = str(info.value)
    assert expected in message
    # one message that says what is wrong, not pydantic's URL-laden dump
    assert "errors.pydantic.dev" not in message


def test_a_source_with_a_bad_hash_is_refused():
    raw = default_raw()
    raw["data"]["sources"][0]["sha256"] = "abc"
    with pytest.raises(ParamsError, match=r"data\.sources\.0\.keras\.sha256"):
        parse_params(raw)


def test_an_idx_source_needs_all_four_md5s():
    raw = default_raw()
    del raw["data"]["sources"][1]["md5"]["test_labels"]
    with pytest.raises(ParamsError, match="test_labels"):
        parse_params(raw)


def test_missing_and_malformed_files_are_params_errors(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(bad)


def test_the_cli_reports_bad_params_in_one_message_without_traceback(tmp_path):
    raw = default_raw()
    raw["split"]["val_size"] = -5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "bnlab.cli", "split"], cwd=tmp_path,
                          env=project_env(), capture_output=True, text=True)
    assert done.returncode == 2
    assert "split.val_size" in done.stderr and "greater than 0" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()
