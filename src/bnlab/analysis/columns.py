"""The formats of the report's files that users, dashboards and the results page rely on
(design.md's contracts): the CSV columns, and the comparison table's title line. The probes'
own columns (probes.csv, steps.csv) are :mod:`bnlab.ml.probe_rows`'s."""

from bnlab.data.mnist import DataError

PER_SEED_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss")
# sweep.csv: these after the grid's own columns (one per swept setting).
SWEEP_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss", "final_train_loss")
# Each compared network's settings (per grid point), as the estimator resolves them: what the
# results page says a comparison was made at (bnlab.analysis.report.settings_frame).
SETTINGS_FILE = "settings.csv"


def comparison_title(name: str, description: str) -> str:
    """comparison.md's first line: the experiment and its description."""
    return f"# {name}: {description}"


def description_in(comparison: str, name: str) -> str:
    """The description from comparison.md's first line (:func:`comparison_title`)."""
    first, prefix = comparison.partition("\n")[0], comparison_title(name, "")
    if not first.startswith(prefix):
        raise DataError(f"reports/{name}/comparison.md does not start with {prefix!r}: not the report's table")
    return first.removeprefix(prefix)
