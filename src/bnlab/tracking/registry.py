"""MLflow's model registry: each variant of an experiment is a registered model
``bnlab-<experiment>-<variant>``, with one version per distinct trained model (told apart by
the digest of its weights), the alias ``seed-<n>`` on each seed's version and ``champion`` on
the seed with the best validation accuracy (the lowest seed on a tie). The report stage
registers (not for a grid, nor under `dvc exp run`: :func:`skipped`);
``models:/bnlab-notebook-batchnorm@champion`` is what `bnlab serve` serves.

A re-run that trains the same models adds no version: their digests are registered already,
and only the aliases are set again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bnlab.tracking.runs import COPIED, MODEL_DIGEST_TAG, PROVENANCE_TAG, SOURCE_RUN_TAG, MlflowClient

CHAMPION = "champion"
SEED_ALIAS = "seed-"


def model_name(experiment: str, variant: str) -> str:
    return f"bnlab-{experiment}-{variant}"


def model_uri(experiment: str, variant: str, alias: str = CHAMPION) -> str:
    """``models:/bnlab-<experiment>-<variant>@<alias>``: what MLflow loads and serves."""
    return f"models:/{model_name(experiment, variant)}@{alias}"


def seed_alias(seed: int) -> str:
    return f"{SEED_ALIAS}{seed}"


@dataclass(frozen=True)
class Candidate:
    """One seed's trained model of a variant, as the report stage sees it."""

    variant: str
    seed: int
    run_id: str  # the job's run under the experiment's parent run
    digest: str  # sha256 of its weights.npz
    val_accuracy: float  # after the last epoch


def skipped(grid: dict | None, lineage: dict[str, str]) -> list[str]:
    """Why this report registers nothing, if it does not (one line for the stage's log): a
    grid's variants have a model per grid point, so no one model to register under the
    variant's name; a DVC experiment (`dvc exp run`, `mlflow run` with other values) is a
    variation, and the registry's aliases follow the workspace's own runs."""
    if grid:
        return ["not registered: a grid experiment has a model per grid point"]
    if lineage.get("dvc.exp_name"):
        return [f"not registered: DVC experiment {lineage['dvc.exp_name']} (the registry follows `dvc repro`)"]
    return []


def register(client: MlflowClient, experiment: str, description: str, candidates: list[Candidate]) -> list[str]:
    """Register every candidate's model under its variant's name and set the aliases; returns
    one line per variant for the stage's log."""
    lines = []
    for variant in dict.fromkeys(c.variant for c in candidates):
        name = model_name(experiment, variant)
        ensure_registered(client, name, {"experiment": experiment, "variant": variant}, description)
        seeds = [c for c in candidates if c.variant == variant]
        versions = {c.seed: version_of(client, name, c, experiment) for c in seeds}
        for seed, version in versions.items():
            client.set_registered_model_alias(name, seed_alias(seed), version)
        champion = max(seeds, key=lambda c: (c.val_accuracy, -c.seed))
        client.set_registered_model_alias(name, CHAMPION, versions[champion.seed])
        drop_stale_seed_aliases(client, name, set(versions))
        lines.append(
            f"registered {name}: {CHAMPION} = version {versions[champion.seed]} (seed {champion.seed}, "
            f"validation accuracy {champion.val_accuracy:.4f}), {len(versions)} seeds"
        )
    return lines


def ensure_registered(client: MlflowClient, name: str, tags: dict[str, str], description: str) -> None:
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name, tags=tags, description=description)


def version_of(client: MlflowClient, name: str, candidate: Candidate, experiment: str) -> str:
    """The version holding this model (the same digest), created if there is none yet."""
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(MODEL_DIGEST_TAG) == candidate.digest:
            return version.version
    run_id = model_run(client, candidate.run_id)
    model_id = logged_model_id(client, run_id)
    tags = {
        MODEL_DIGEST_TAG: candidate.digest,
        "experiment": experiment,
        "variant": candidate.variant,
        "seed": str(candidate.seed),
        "val_accuracy": f"{candidate.val_accuracy:.6f}",
    }
    source = f"models:/{model_id}" if model_id else f"runs:/{run_id}/model"
    return client.create_model_version(name, source, run_id=run_id, tags=tags, model_id=model_id).version


def drop_stale_seed_aliases(client: MlflowClient, name: str, seeds: set[int]) -> None:
    """Remove ``seed-<n>`` of seeds the experiment no longer declares."""
    for alias in client.get_registered_model(name).aliases:
        if alias.startswith(SEED_ALIAS) and int(alias.removeprefix(SEED_ALIAS)) not in seeds:
            client.delete_registered_model_alias(name, alias)


def model_run(client: MlflowClient, run_id: str) -> str:
    """The run holding the model: a copy made for a DVC experiment (``bnlab.provenance=copied``)
    has none of its own, the run it copies (``bnlab.source_run``) has."""
    tags = client.get_run(run_id).data.tags
    return tags[SOURCE_RUN_TAG] if tags.get(PROVENANCE_TAG) == COPIED else run_id


def logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    """The id of the model this run logged (:func:`bnlab.tracking.models.log_served_model`)."""
    run = client.get_run(run_id)
    found = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=1
    )
    return found[0].model_id if found else None
