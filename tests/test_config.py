import pytest
import yaml

from bnlab.experiments.params import ParamsError, load_params, parse_params

from helpers import PROJECT


def default_raw() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_project_params_load_with_the_reference_defaults():
    params = load_params(PROJECT / "params.yaml")
    assert params.split.val_size == 5000
    assert [s.kind for s in params.data.sources] == ["keras", "idx", "wheel", "local"]
    notebook = params.experiment("notebook")
    assert set(notebook.variants) == {"batchnorm", "plain"} and notebook.baseline == "plain"
    for variant, batch_norm in (("batchnorm", True), ("plain", False)):
        settings = notebook.settings(variant)
        assert settings.hidden_units == [32, 32] and settings.learning_rate == 0.01
        assert settings.batch_size == 32 and settings.epochs == 10 and settings.batch_norm is batch_norm
    assert notebook.seeds == list(range(10))  # README: Seeds


def test_the_shipped_experiments_are_what_the_papers_describe():
    params = load_params(PROJECT / "params.yaml")
    ioffe = params.experiment("ioffe2015").settings("plain")
    assert ioffe.hidden_units == [100, 100, 100] and ioffe.activation == "sigmoid"
    assert ioffe.batch_size == 60 and ioffe.steps == 50_000 and ioffe.init_std is not None
    assert params.experiment("ioffe2015").settings("batchnorm").bn_position in (None, "before")
    noisy = params.experiment("noisy_bn")
    assert set(noisy.variants) == {"batchnorm", "noisy_bn", "plain"}
    assert noisy.settings("noisy_bn").noise_shift > 0 and noisy.settings("noisy_bn").noise_scale > 1
    assert noisy.settings("plain").model_dump(exclude={"batch_norm"}) == params.experiment("notebook").settings(
        "plain"
    ).model_dump(exclude={"batch_norm"})


def test_every_model_setting_is_an_estimator_parameter_of_the_same_name():
    from bnlab import KerasMLPClassifier
    from bnlab.ml.hyperparams import ModelParams

    assert set(ModelParams.model_fields) <= set(KerasMLPClassifier().get_params())


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("split", "val_size", 0, "split.val_size"),
        ("split", "val_size", 60000, "split.val_size"),
        ("split", "val_size", "5000", "split.val_size"),
        ("split", "method", "random", "split.method"),
        ("split", "vall_size", 10, "split.vall_size"),
        ("data", "timeout_s", -1, "data.timeout_s"),
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


NOTEBOOK = "experiments.notebook"


def set_key(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        raw = raw[part]
    if value is DELETE:
        del raw[last]
    else:
        raw[last] = value


DELETE = object()


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("model.epochs", 0, f"{NOTEBOOK}.model.epochs: Input should be greater than 0"),
        ("model.learning_rate", 0, f"{NOTEBOOK}.model.learning_rate"),
        ("model.activation", "relux", f"{NOTEBOOK}.model.activation"),
        ("model.optimizer", "adamax9", f"{NOTEBOOK}.model.optimizer"),
        ("model.hidden_units", [32, 0], f"{NOTEBOOK}.model.hidden_units.1"),
        ("model.batch_norm", "yes", f"{NOTEBOOK}.model.batch_norm"),
        ("seeds", [], f"{NOTEBOOK}.seeds"),
        ("seeds", [1, 1], "seeds must be distinct"),
        ("variants.plain.batch_normm", False, f"{NOTEBOOK}.variants.plain.batch_normm: Extra inputs are not permitted"),
        ("variants.plain.bn_position", "middle", f"{NOTEBOOK}.variants.plain.bn_position"),
        ("baseline", "vanilla", "baseline 'vanilla' is not one of the variants (batchnorm, plain)"),
        ("variants", {}, f"{NOTEBOOK}.variants: Dictionary should have at least 2 items"),
        ("variants", {"plain": {"batch_norm": False}}, "at least 2 items"),
        ("probes.every_steps", 0, f"{NOTEBOOK}.probes.every_steps: Input should be greater than 0"),
        ("probes.unit", 32, "probes.unit 32 is not a unit of every hidden layer"),
        ("probes.images", 31, "probes.images 31 is less than one batch of variant 'batchnorm' (batch_size 32)"),
        ("probes.images", 32, None),
        ("model.steps", 100, "set either epochs or steps, not both"),
        ("reference.bn", 0.9, "reference names variants that do not exist: bn"),
        ("model.hidden_units", DELETE, None),  # allowed: the estimator's default
        ("model.momentum", 0.9, "variant 'batchnorm': momentum 0.9 is SGD's heavy ball; optimizer 'adam' has none"),
        ("model.momentum", 1.0, f"{NOTEBOOK}.model.momentum: Input should be less than 1"),
        ("model.weight_decay", -0.1, f"{NOTEBOOK}.model.weight_decay"),
        ("variants.plain.gradient_clipping", "global", f"{NOTEBOOK}.variants.plain.gradient_clipping"),
        ("model.clip_factor", 0, f"{NOTEBOOK}.model.clip_factor: Input should be greater than 0"),
        ("variants.plain.residual", "fixup", f"{NOTEBOOK}.variants.plain.residual"),
        ("model.residual", "skipinit", None),  # the notebook's two layers have one width
    ],
)
def test_a_bad_experiment_is_named_with_its_key(key, value, expected):
    raw = default_raw()
    set_key(raw["experiments"]["notebook"], key, value)
    if expected is None:
        parse_params(raw)
        return
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert expected in str(info.value)
    assert "errors.pydantic.dev" not in str(info.value)


def test_experiment_and_variant_names_must_be_usable_as_folder_and_stage_names():
    raw = default_raw()
    raw["experiments"]["Note book"] = raw["experiments"].pop("notebook")
    with pytest.raises(ParamsError, match="experiments.Note book"):
        parse_params(raw)
    with pytest.raises(ParamsError, match="no experiment 'nope' in params.yaml; declared: notebook"):
        load_params(PROJECT / "params.yaml").experiment("nope")


@pytest.mark.parametrize(
    "field, text, expected",
    [
        ("epochs", "5", 5),
        ("epochs", "5.0", 5),
        ("learning_rate", "0.001", 0.001),
        ("hidden_units", "64,32", [64, 32]),
        ("hidden_units", "64", [64]),
        ("batch_norm", "false", False),
    ],
)
def test_a_setting_given_as_text_is_read_as_params_yaml_would(field, text, expected):
    from bnlab.ml.hyperparams import parse_value as parse_model_value

    assert parse_model_value(field, text) == expected


@pytest.mark.parametrize(
    "field, text, expected",
    [
        ("epochs", "-1", "epochs: Input should be greater than 0 (got -1)"),
        ("epochs", "2.5", "epochs: Input should be a valid integer"),
        ("bn_momentum", "1.5", "bn_momentum: Input should be less than 1"),
        ("dropout", "0.5", "dropout: not an estimator setting"),
    ],
)
def test_a_bad_setting_given_as_text_is_named(field, text, expected):
    from bnlab.ml.hyperparams import parse_value as parse_model_value

    with pytest.raises(ParamsError) as info:
        parse_model_value(field, text)
    assert expected in str(info.value)


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


def test_params_yaml_uses_no_yaml_anchors():
    """`dvc exp run -S` (and so `mlflow run -P`) rewrites params.yaml: it expands anchors and
    merge keys and drops the override on an anchored node (epochs=2 trained 10 epochs)."""
    text = (PROJECT / "params.yaml").read_text()
    code = [line.split("#")[0] for line in text.splitlines()]
    assert not [line for line in code if "<<:" in line or ": &" in line or ": *" in line]


SWEEP = "experiments.lr_sweep"


@pytest.mark.parametrize(
    "grid, expected",
    [
        ({}, f"{SWEEP}.grid: Value error, is empty: give at least one setting and its values, or null for no grid"),
        ({"learning_rate": []}, "learning_rate: expected a non-empty list of values"),
        ({"learning_rate": [0.01, "fast"]}, "learning_rate: value 'fast': Input should be a valid number"),
        ({"learning_rate": [0.01, 0]}, "learning_rate: value 0: Input should be greater than 0"),
        ({"learning_rate": [0.01, 0.01]}, "learning_rate: values must be distinct"),
        # Distinct numbers that would name one folder (6 significant digits) and overwrite its models.
        (
            {"learning_rate": [1e-4, 1.00000001e-4]},
            "learning_rate: values must be distinct; two are named 0.0001 (written 0.0001 and 0.000100000001)",
        ),
        ({"hidden_units": [[64, 64], [64.0000001, 64]]}, "hidden_units: value [64.0000001, 64]"),
        ({"dropout": [0.1]}, "'dropout' is not an estimator setting; known: hidden_units"),
        ({"learning_rate": 0.01}, f"{SWEEP}.grid.learning_rate: Input should be a valid list"),
        ({"batch_norm": [True, False]}, "variant 'batchnorm' sets batch_norm, which the grid sweeps"),
    ],
)
def test_a_bad_grid_is_named(grid, expected):
    raw = default_raw()
    raw["experiments"]["lr_sweep"]["grid"] = grid
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert expected in str(info.value)


def test_a_grid_gives_every_combination_for_every_variant_and_seed():
    from bnlab.experiments.jobs import jobs

    raw = default_raw()
    raw["experiments"]["lr_sweep"]["grid"] = {"learning_rate": [0.001, 0.01], "hidden_units": [[16], [32, 32]]}
    sweep = parse_params(raw).experiment("lr_sweep")
    assert sweep.grid_points()[1] == (("learning_rate", 0.001), ("hidden_units", [32, 32]))
    names = [job.name for job in jobs("lr_sweep", sweep)]
    assert len(names) == len(set(names)) == 2 * 2 * len(sweep.variants) * len(sweep.seeds)  # points × variants × seeds
    assert names[: len(sweep.variants)] == [
        f"{variant}-learning_rate=0.001,hidden_units=16-seed0" for variant in sweep.variants
    ]
    settings = sweep.settings("plain", sweep.grid_points()[1])
    assert settings.learning_rate == 0.001 and settings.hidden_units == [32, 32] and settings.batch_norm is False


def test_the_shipped_learning_rate_sweep_is_the_issue_s():
    sweep = load_params(PROJECT / "params.yaml").experiment("lr_sweep")
    assert sweep.grid == {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
    assert sweep.seeds == list(range(10)) and sweep.settings("batchnorm").epochs == 10
    notebook = load_params(PROJECT / "params.yaml").experiment("notebook")
    for variant in ("batchnorm", "plain"):  # the notebook's network, but for the learning rate
        assert sweep.settings(variant).model_dump(exclude={"learning_rate"}) == notebook.settings(variant).model_dump(
            exclude={"learning_rate"}
        )
