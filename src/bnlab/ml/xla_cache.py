"""Compile once per machine: TensorFlow's persistent cache of XLA programs, in the project.

TensorFlow 2.21 can write each program XLA compiles to a directory and load it in a later
process instead of compiling again (``TF_XLA_FLAGS``'s ``--tf_xla_persistent_cache_*``; it
serves XLA:CPU, ``xla_compile_cache__*__XLA_CPU_JIT.pb``). A process then still traces and
lowers each function, but skips XLA's optimization and LLVM's code generation.

TensorFlow keys an entry by the function's signature and its HLO before optimization, not by
the flags it was compiled with nor by the CPU (measured: an entry written without ``XLA_FLAGS``
was loaded under ``--xla_cpu_max_isa=AVX2``). So bnlab keys the entries itself, by the file
name prefix: a hash of TensorFlow's version, ``XLA_FLAGS``, the user's own ``TF_XLA_FLAGS`` and
the CPU's vendor, family, model and vector width. Another CPU, wheel or flag never loads an
entry. Loaded or compiled, a program computes the same bytes (tests/test_xla_cache.py).

TensorFlow writes an entry in place, not atomically, and fails the call that reads a truncated
one ("Read less bytes than requested": measured), so a process killed while writing, or a
reader beside a writer, could break every later fit. So each process reads and writes a folder
of its own (``.staging/<pid>-<start>``, hard links to the published entries, made when it
starts) and publishes what it compiled by hard-linking each finished file into the cache
(:func:`publish`: after each job and at exit): a published entry is always whole. Folders of
processes that are gone are removed.

``BNLAB_XLA_CACHE``: the directory (default ``.xla-cache`` in the project's root), or ``off``.
TensorFlow reads both variables at its first compile, so anything that changes how XLA compiles
after :mod:`bnlab.ml.tf_runtime` is imported (a dump, another vendor's code) calls
:func:`turn_off` first: a program loaded from the cache would be neither dumped nor recompiled.
No TensorFlow import here: this runs before TensorFlow loads.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import os
import shutil
import sys
from collections.abc import MutableMapping
from pathlib import Path

import psutil

from bnlab.core.cpu import cpu_model
from bnlab.core.layout import XLA_CACHE

CACHE_ENV = "BNLAB_XLA_CACHE"
OFF = "off"
FLAGS_ENV = "TF_XLA_FLAGS"
_OWN_FLAGS = ("--tf_xla_persistent_cache_directory=", "--tf_xla_persistent_cache_prefix=")
STAGING = ".staging"
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos", "tf-nightly")
_staged: dict[str, Path] = {}  # this process's folder and the cache it publishes to


def cache_directory(env: MutableMapping[str, str] = os.environ) -> Path | None:
    """Where compiled programs go, absolute (a job may change folders); None when turned off."""
    setting = env.get(CACHE_ENV, "").strip()
    if setting.lower() == OFF:
        return None
    return Path(setting or XLA_CACHE).resolve()


def entry_prefix(env: MutableMapping[str, str] = os.environ, cpu: str | None = None) -> str:
    """``bnlab-<16 hex>``: what must match for an entry to be loaded (the module's docstring)."""
    parts = [
        _tensorflow(),
        env.get("XLA_FLAGS", ""),
        " ".join(_user_flags(env)),
        cpu if cpu is not None else cpu_model(),
    ]
    return "bnlab-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def configure(env: MutableMapping[str, str] = os.environ) -> Path | None:
    """Point TensorFlow's cache at :func:`cache_directory` under :func:`entry_prefix` (after any
    flags of the user's), or take bnlab's cache flags out when it is off. Call it again after
    changing ``XLA_FLAGS``: the prefix follows them. Returns the directory."""
    if _staged.get("pid") == os.getpid():
        _discard()  # configured before: its folder was made for other flags
    directory = cache_directory(env)
    flags = _user_flags(env)
    if directory is not None:
        prefix = entry_prefix(env)
        try:
            flags += [f"{_OWN_FLAGS[0]}{_stage(directory, prefix)}", f"{_OWN_FLAGS[1]}{prefix}"]
        except OSError as exc:  # a read-only folder, a file system without hard links: compile as before
            print(f"bnlab: no XLA program cache in {directory} ({exc}); {CACHE_ENV}=off hides this", file=sys.stderr)
            directory = None
    if flags:
        env[FLAGS_ENV] = " ".join(flags)
    else:
        env.pop(FLAGS_ENV, None)
    return directory


def publish() -> int:
    """Link every entry this process wrote into the cache (a file TensorFlow has finished: it
    writes while compiling, and no compile is running when this is called). How many were new."""
    own, cache = _staged.get("own"), _staged.get("cache")
    if own is None or not own.is_dir():
        return 0
    published = 0
    for entry in own.iterdir():
        if entry.stat().st_nlink == 1:  # not a link to a published entry: written here
            try:
                os.link(entry, cache / entry.name)
                published += 1
            except FileExistsError:
                pass  # another process published the same program first
    return published


def _stage(cache: Path, prefix: str) -> Path:
    """This process's folder (the module's docstring), holding links to the cache's entries
    for ``prefix``."""
    root = cache / STAGING
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    own = root / _process_label(psutil.Process())
    own.mkdir(exist_ok=True)
    for entry in cache.glob(f"{prefix}__*.pb"):
        try:
            os.link(entry, own / entry.name)
        except FileExistsError:
            pass
    _staged.update(pid=os.getpid(), own=own, cache=cache)
    return own


def _process_label(process: psutil.Process) -> str:
    """``<pid>-<start time>``: a pid can be reused, the pair cannot."""
    return f"{process.pid}-{int(process.create_time() * 100)}"


def _remove_abandoned(root: Path) -> None:
    """Staging folders whose process is gone (killed: its files may be half written)."""
    for folder in root.iterdir():
        pid = folder.name.split("-")[0]
        try:
            alive = pid.isdigit() and _process_label(psutil.Process(int(pid))) == folder.name
        except psutil.Error:
            alive = False
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)


def _discard() -> None:
    """At exit: publish, then remove this process's folder."""
    if _staged.get("pid") != os.getpid():
        return  # a forked child that never staged: the folder is its parent's
    publish()
    shutil.rmtree(_staged.pop("own"), ignore_errors=True)
    _staged.clear()


def _after_fork() -> None:
    """In a forked child (a local worker, forked from a server that imported TensorFlow but
    compiled nothing): a folder of its own. TensorFlow reads the flags at the first compile."""
    if _staged:
        _staged.clear()
        configure()


atexit.register(_discard)
os.register_at_fork(after_in_child=_after_fork)


def turn_off(env: MutableMapping[str, str] = os.environ) -> None:
    """No cache for this process (and the processes it starts): every program compiled anew."""
    env[CACHE_ENV] = OFF
    configure(env)


def _tensorflow() -> str:
    """The installed TensorFlow's distribution and version (``tensorflow-cpu==2.21.0``): looked up
    by its usual names first (a scan of every installed distribution takes a tenth of a second
    at each process's start)."""
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            return f"{name}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    names = sorted(set(importlib.metadata.packages_distributions().get("tensorflow", [])))
    return ",".join(f"{name}=={importlib.metadata.version(name)}" for name in names) or "unknown"


def _user_flags(env: MutableMapping[str, str]) -> list[str]:
    """``TF_XLA_FLAGS`` without bnlab's own cache flags."""
    return [flag for flag in env.get(FLAGS_ENV, "").split() if not flag.startswith(_OWN_FLAGS)]
