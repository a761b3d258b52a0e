"""What the results page reads of an experiment: the files its report stage wrote into
reports/<experiment>/, nothing else. The description, the baseline, the variants, the seeds
and the grid's settings are read from them too, so the page depends on reports/ alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bnlab.analysis.columns import SETTINGS_FILE, SWEEP_COLUMNS, description_in
from bnlab.experiments.params import COMPARISON_KEY
from bnlab.ml.probe_rows import TABLES

# The report's files this page reads, in reports/<experiment>/.
READ = ("comparison.md", "metrics.json", "sweep.csv", SETTINGS_FILE, *TABLES, "figures")


@dataclass(frozen=True)
class ExperimentResults:
    """One experiment's reports, as read back."""

    name: str
    description: str
    comparison: str  # comparison.md: the report's tables, as `make run` prints them
    metrics: dict
    sweep: pd.DataFrame  # one row per job
    probes: pd.DataFrame
    steps: pd.DataFrame
    landscape: pd.DataFrame
    ics: pd.DataFrame
    init_gradients: pd.DataFrame
    weight_norms: pd.DataFrame
    sharpness: pd.DataFrame
    figures: Path
    settings: pd.DataFrame = field(default_factory=pd.DataFrame)  # settings.csv: each network's

    def setting(self, variant: str, name: str, point: dict | None = None):
        """One resolved estimator setting of a compared network (at a grid point)."""
        rows = self.settings[self.settings["variant"] == variant]
        for key, value in (point or {}).items():
            rows = rows[rows[key] == value]
        return rows[name].iloc[0]

    @property
    def grid_keys(self) -> list[str]:
        return list(self.sweep.columns[: list(self.sweep.columns).index(SWEEP_COLUMNS[0])])

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.sweep["variant"]))

    @property
    def seeds(self) -> list[int]:
        return sorted(self.sweep["seed"].unique().tolist())

    @property
    def baseline(self) -> str:
        point = next(iter(self.metrics.values())) if self.grid_keys else self.metrics
        compared = set(point[COMPARISON_KEY])
        return next(v for v in self.variants if v not in compared)

    def outcomes(self, variant: str) -> bytes:
        """The variant's per-seed results (seed, test accuracy, test loss, final training loss) as
        bytes: experiments that trained the same networks (shared runs) have the same."""
        rows = self.sweep[self.sweep["variant"] == variant].sort_values("seed")
        return rows[list(SWEEP_COLUMNS[1:])].to_numpy(float).tobytes()

    def has_point(self, point: dict) -> bool:
        return set(point) <= set(self.grid_keys) and not self.at_point(point).empty

    def at_point(self, point: dict | None) -> pd.DataFrame:
        """sweep.csv's rows at one grid point (all rows without a grid; none for a point the
        grid does not have)."""
        rows = self.sweep
        for key, value in (point or {}).items():
            rows = rows[rows[key] == value] if key in rows else rows.iloc[:0]
        return rows


def read_results(folder: Path) -> ExperimentResults:
    """``folder`` = reports/<experiment>/; a missing file raises FileNotFoundError naming it."""
    name = folder.name
    for file in READ:
        if not (folder / file).exists():
            raise FileNotFoundError(f"{folder / file} is missing: run `dvc repro report@{name}` first")
    comparison = (folder / "comparison.md").read_text()
    return ExperimentResults(
        name,
        description_in(comparison, name),
        comparison,
        json.loads((folder / "metrics.json").read_text()),
        pd.read_csv(folder / "sweep.csv"),
        *(pd.read_csv(folder / file, dtype={"unit": str}) for file in TABLES),
        folder / "figures",
        pd.read_csv(folder / SETTINGS_FILE),
    )


def reported_experiments(reports: Path, first: str) -> list[Path]:
    """Every experiment's folder under reports/, ``first`` (the default experiment) first, then
    by name: the page shows what the reports hold, as DVC sees them."""
    folders = sorted((p for p in reports.iterdir() if p.is_dir()), key=lambda p: (p.name != first, p.name))
    if not folders:
        raise FileNotFoundError(f"{reports}/ holds no experiment's report: run `dvc repro` first")
    return folders
