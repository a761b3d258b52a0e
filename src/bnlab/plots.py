"""Figures from histories and test results: matplotlib's object API, no global state."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

COLORS = {"batchnorm": "tab:blue", "plain": "tab:orange"}
LABELS = {"batchnorm": "with BN", "plain": "without BN"}
TITLES = {
    "train_loss": "Training loss",
    "train_accuracy": "Training accuracy",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
}


def curve_figure(metric: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], n_seeds: int) -> Figure:
    """One of the reference's four plots: a metric per epoch, BN vs plain, mean across seeds
    with a ±1 std band."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for variant, (mean, std) in curves.items():
        epochs = np.arange(1, len(mean) + 1)
        ax.plot(epochs, mean, marker="o", color=COLORS[variant], label=LABELS[variant])
        ax.fill_between(epochs, mean - std, mean + std, color=COLORS[variant], alpha=0.2)
    ax.set_title(f"{TITLES[metric]} (mean ± std over {n_seeds} seeds)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.split("_")[-1])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(matrices: dict[str, np.ndarray], classes: list, n_seeds: int) -> Figure:
    """Confusion matrices side by side, counts summed over seeds."""
    fig = Figure(figsize=(5 * len(matrices), 4.5), dpi=100)
    for i, (variant, matrix) in enumerate(matrices.items(), start=1):
        ax = fig.add_subplot(1, len(matrices), i)
        # log scale of counts + 1: the diagonal would otherwise drown every error
        ax.imshow(np.log1p(matrix), cmap="Blues")
        errors = int(matrix.sum() - np.trace(matrix))
        ax.set_title(f"{LABELS[variant]}: {errors} errors ({n_seeds} seeds summed)")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(len(classes)), [str(c) for c in classes])
        ax.set_yticks(range(len(classes)), [str(c) for c in classes])
        for (r, c), count in np.ndenumerate(matrix):
            if count:
                ax.text(c, r, str(count), ha="center", va="center", fontsize=6,
                        color="white" if r == c else "black")
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path) -> None:
    # No timestamps or version in the file: the same figure gives the same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
