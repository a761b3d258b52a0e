"""Servers the tests start on 127.0.0.1 and stop: PostgreSQL in a temporary data folder, and
`mlflow server` on a given backend store with proxied artifacts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_HELP = (
    "PostgreSQL is not installed: `apt-get install postgresql` (Debian) to run the "
    "tracking-server tests on it; CI installs it"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def require_postgres() -> Path:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(POSTGRES_HELP)
    return bin_dir


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI and these machines run tests as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _pg(command: list[str]) -> None:
    done = subprocess.run(_as_postgres_user(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")


@contextmanager
def postgres():
    """A PostgreSQL server on 127.0.0.1 with database `mlflow`, in a temporary data folder
    that the server's user can reach; yields its SQLAlchemy URI."""
    bin_dir = require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="bnlab-pg-"))
    data = folder / "data"
    data.mkdir()
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    _pg([str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"])
    _pg(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(data / "server.log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {data}",
            "start",
        ]
    )
    try:
        _pg([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"])
        yield f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_health(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    # /health answers without credentials, on the basic-auth app too.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server at {url} did not become healthy in {seconds}s")


AUTH_ADMIN = "admin"  # the basic-auth app's first user (mlflow/server/auth/basic_auth.ini)


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, admin_password: str | None = None):
    """`mlflow server` on 127.0.0.1, proxying artifacts to a local folder; yields (url, process).
    With ``admin_password``, MLflow's basic-auth app: every request needs a user's credentials,
    and user AUTH_ADMIN has that password (its user database beside the artifacts)."""
    port = free_port()
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "w")
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--serve-artifacts",
        "--workers",
        "1",
    ]
    # No job runner: bnlab submits no MLflow jobs, and its huey consumers cost a core for seconds.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if admin_password:
        command += ["--app-name", "basic-auth"]
        env.update(MLFLOW_AUTH_ADMIN_PASSWORD=admin_password, MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex())
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=artifacts.parent, env=env
    )  # cwd: the auth app's basic_auth.db
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url, process
    finally:
        stop(process)
        log.close()


@contextmanager
def mlflow_ui(backend_uri: str, folder: Path):
    """`mlflow ui` on 127.0.0.1 over a store; yields its URL. Its log goes into ``folder``."""
    port = free_port()
    log = open(folder / f"mlflow-ui-{port}.log", "w")
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "ui",
        "--backend-store-uri",
        backend_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        stop(process)
        log.close()


CHROMIUM_HELP = (
    "no chromium: the browser tests drive Debian's package (`apt-get install chromium`; "
    "Playwright's own browser builds cannot be downloaded here)"
)


def require_chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(CHROMIUM_HELP)
    return found


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def rest(url: str, endpoint: str, payload: dict | None = None, params: str = "") -> dict:
    """Call the tracking server's REST API (POST with a JSON body, or GET)."""
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{endpoint}{params}",
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextmanager
def dask_cluster(folder: Path, n_workers: int = 2):
    """`dask scheduler` and ``n_workers`` `dask worker` processes, started as `dask worker`
    starts them by default (under a nanny), one thread each (docs/scale.md's set-up), on
    127.0.0.1; yields (address, worker processes, each the leader of its process group). The
    scheduler fails a job whose worker dies instead of re-running it (docs/scale.md)."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    logs = [open(folder / f"dask-{name}.log", "w") for name in ("scheduler", *map(str, range(n_workers)))]
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    workers = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--name", f"worker{i}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
        for i, log in enumerate(logs[1:])
    ]
    try:
        wait_for_workers(address, n_workers)
        yield address, workers
    finally:
        for process in (*workers, scheduler):
            stop(process)
        for log in logs:
            log.close()


def wait_for_workers(address: str, count: int, seconds: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout=seconds, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=seconds)
