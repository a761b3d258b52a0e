"""Markdown tables, by pandas' ``DataFrame.to_markdown`` (tabulate's pipe format): columns
padded to line up, so a table reads in a terminal (`make run` prints one) as well as rendered."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under ``header``, each cell as given (already formatted: no number is re-parsed)."""
    frame = pd.DataFrame([[str(cell) for cell in row] for row in rows], columns=list(header))
    return frame.to_markdown(index=False, disable_numparse=True)


def significant(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; a dash for NaN (nothing to show)."""
    return "—" if math.isnan(value) else f"{value:.{digits}g}"
