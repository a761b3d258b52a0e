"""The base of every validated settings object, and the error that names a bad key.

Settings are strict (``"10"`` is no int, ``1.5`` no bool) and closed (a typo is an unknown key),
so a bad params.yaml stops a stage with one message that names the key and what is allowed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ParamsError(ValueError):
    """Settings that cannot be used; the message names the key and what is allowed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def describe_error(error: dict) -> str:
    """One of pydantic's errors as ``key.path: what is wrong (got value)``."""
    key = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    # Tagged unions add the tag to the path ("data.sources.0.keras.url"); keep it: it says
    # which kind of source the key belongs to.
    got = error.get("input")
    shown = "" if isinstance(got, dict) or error["type"] == "missing" else f" (got {got!r})"
    return f"{key or '<top level>'}: {error['msg']}{shown}"
