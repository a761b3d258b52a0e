"""The XLA program cache (bnlab.ml.xla_cache): keyed by what decides the code, the same bytes
whether a program was compiled or loaded, and never broken by a process killed mid-write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bnlab.ml.tf_runtime  # noqa: F401  (pins XLA_FLAGS, which the key covers, as in a job)
from bnlab.core.cpu import cpu_model
from bnlab.ml import xla_cache

from helpers import project_env

# A short BN fit through every compiled path a job takes (the steps, the last partial step,
# the epoch's evaluation, inference); prints the weights' and probabilities' sha256.
FIT = """
import hashlib, json
from bnlab import KerasMLPClassifier
from helpers import make_mnist
data = make_mnist(n_train=200, n_test=70)
x, y = data.x_train.reshape(200, -1), data.y_train
clf = KerasMLPClassifier(hidden_units=(16, 16), epochs=2, batch_size=32, rescale=1 / 255, random_state=3)
clf.fit(x, y, validation_data=(data.x_test.reshape(70, -1), data.y_test))
weights = b"".join(w.tobytes() for w in clf.model_.get_weights())
proba = clf.predict_proba(data.x_test.reshape(70, -1)).tobytes()
print(json.dumps({"weights": hashlib.sha256(weights).hexdigest(), "proba": hashlib.sha256(proba).hexdigest()}))
"""


def fit(cache: str, **env) -> tuple[dict, str]:
    """One fit in a fresh process with the cache at ``cache`` (or ``off``): its digests and
    TensorFlow's log of the cache (which programs it loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", FIT],
        env={
            **project_env(),
            xla_cache.CACHE_ENV: cache,
            "TF_CPP_MIN_LOG_LEVEL": "0",
            "TF_CPP_VMODULE": "device_executable_persistor=1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def entries(cache: Path) -> set[str]:
    return {path.name for path in cache.glob("*.pb")}


@pytest.mark.slow
def test_programs_loaded_from_the_cache_compute_the_same_bytes_as_programs_compiled(tmp_path):
    cache = tmp_path / "xla-cache"
    cold, cold_log = fit(str(cache))
    written = entries(cache)
    assert written and "Loading cached entry" not in cold_log
    assert {name.split("__")[0] for name in written} == {xla_cache.entry_prefix()}
    assert list((cache / xla_cache.STAGING).iterdir()) == []  # the process's own folder, removed at exit

    warm, warm_log = fit(str(cache))
    assert entries(cache) == written  # nothing compiled again
    assert warm_log.count("Loading cached entry") == len(written)

    off, off_log = fit(xla_cache.OFF)
    assert "Loading cached entry" not in off_log
    assert cold == warm == off


@pytest.mark.slow
def test_other_settings_never_load_an_entry(tmp_path):
    cache = tmp_path / "xla-cache"
    fit(str(cache))
    written = entries(cache)
    # The user's own TensorFlow XLA flags are part of the key (as XLA_FLAGS and the CPU are:
    # test_the_prefix_follows_everything_that_decides_the_code).
    _, log = fit(str(cache), TF_XLA_FLAGS="--tf_xla_always_defer_compilation=false")
    assert "Loading cached entry" not in log
    new = entries(cache) - written
    assert len(new) == len(written) and not {name.split("__")[0] for name in new} & {
        name.split("__")[0] for name in written
    }


@pytest.mark.slow
def test_processes_side_by_side_and_a_killed_writer_leave_the_cache_whole(tmp_path):
    cache = tmp_path / "xla-cache"
    abandoned = cache / xla_cache.STAGING / "999999999-1"  # a process that no longer runs
    abandoned.mkdir(parents=True)
    (abandoned / f"{xla_cache.entry_prefix()}__1__2__XLA_CPU_JIT.pb").write_bytes(b"\x0a\x05half")
    env = {**project_env(), xla_cache.CACHE_ENV: str(cache)}
    both = [
        subprocess.Popen([sys.executable, "-c", FIT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs[0][1][-2000:]
    assert len({out.strip().splitlines()[-1] for out, _ in outputs}) == 1
    assert not abandoned.exists()
    warm, log = fit(str(cache))  # every published entry whole: loaded, not failing the fit
    assert warm == json.loads(outputs[0][0].strip().splitlines()[-1])
    assert log.count("Loading cached entry") == len(entries(cache))


def test_the_prefix_follows_everything_that_decides_the_code():
    env, intel = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}, "GenuineIntel family 6 model 167 avx512f"
    base = xla_cache.entry_prefix(env, cpu=intel)
    assert base == xla_cache.entry_prefix(dict(env), cpu=intel)
    others = [
        xla_cache.entry_prefix({"XLA_FLAGS": "--xla_cpu_max_isa=AVX512"}, cpu=intel),
        xla_cache.entry_prefix(env, cpu="AuthenticAMD family 25 model 17 avx512f"),
        xla_cache.entry_prefix({**env, "TF_XLA_FLAGS": "--tf_xla_enable_lazy_compilation=false"}, cpu="x"),
        xla_cache.entry_prefix(env, cpu="x"),
    ]
    assert len({base, *others}) == 5
    # bnlab's own cache flags in TF_XLA_FLAGS are not part of the key (they name the folder)
    assert xla_cache.entry_prefix(
        {**env, "TF_XLA_FLAGS": "--tf_xla_persistent_cache_directory=/x"}, cpu="x"
    ) == xla_cache.entry_prefix(env, cpu="x")


def test_the_cache_folder_is_the_projects_unless_set_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tmp_path = tmp_path.resolve()
    assert xla_cache.cache_directory({}) == tmp_path / ".xla-cache"
    assert xla_cache.cache_directory({xla_cache.CACHE_ENV: "elsewhere"}) == tmp_path / "elsewhere"
    assert xla_cache.cache_directory({xla_cache.CACHE_ENV: "OFF"}) is None


def test_a_cache_folder_that_cannot_be_written_leaves_compiling_as_it_was(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "-c", "import os, bnlab.ml.tf_runtime; print(os.environ.get('TF_XLA_FLAGS', ''))"],
        env={**project_env(), xla_cache.CACHE_ENV: str(blocked / "xla-cache"), "TF_XLA_FLAGS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no XLA program cache" in done.stderr and str(blocked) in done.stderr
    assert done.stdout.strip() == ""  # no cache flags: TensorFlow compiles every program


def test_this_process_compiles_through_its_own_staging_folder():
    """tf_runtime configured the cache when it loaded TensorFlow: the folder TensorFlow writes
    to is this process's own, under the cache, and the key is today's flags and CPU."""
    flags = dict(flag.split("=", 1) for flag in os.environ["TF_XLA_FLAGS"].split() if "=" in flag)
    folder = Path(flags["--tf_xla_persistent_cache_directory"])
    assert folder.parent.name == xla_cache.STAGING and folder.name.startswith(f"{os.getpid()}-")
    assert folder.is_dir()
    assert flags["--tf_xla_persistent_cache_prefix"] == xla_cache.entry_prefix(cpu=cpu_model())
