"""An experiment's summary as metrics of its parent run (each variant's means over seeds, each
comparison's gain, interval and tests: :func:`bnlab.analysis.report.parent_metrics`): one step,
or in a grid one step per grid point (in the grid's order), each step's point named by a tag
``grid_step.<i>`` (``grid_step.0 = learning_rate=0.0001``), so the UI charts the sweep against
"step"."""

from __future__ import annotations

from bnlab.tracking.logged import log_metrics
from bnlab.tracking.runs import MlflowClient

GRID_STEP_TAG = "grid_step."


def log_summary(
    client: MlflowClient, parent_id: str, steps: list[dict[str, float]], points: list[str] | None = None
) -> None:
    """``steps[i]`` at step i; ``points[i]``, a grid's, as tag ``grid_step.<i>``."""
    for step, metrics in enumerate(steps):
        log_metrics(client, parent_id, metrics, step=step)
    for step, point in enumerate(points or []):
        client.set_tag(parent_id, f"{GRID_STEP_TAG}{step}", point)
