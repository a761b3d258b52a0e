"""Where MLflow's store is, whether it answers, and how to name it without its password.

No MLflow import here: the CLI and `bnlab summary` use it too, and a store that does not answer
is reported in seconds, before MLflow's own retries (minutes, and pages of tracebacks).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bnlab.core.layout import STORE_ARTIFACTS, STORE_DB

DEFAULT_MLFLOW_EXPERIMENT = "batchnorm-mnist"  # MLFLOW_EXPERIMENT_NAME overrides it
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")  # MLflow's own


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI (password redacted)."""


def project_root() -> Path:
    """The repository's own folder: ``DVC_ROOT``, which DVC sets for stage commands, else the
    current folder. DVC runs queued experiments (``dvc exp run --queue``) in a temporary copy
    under .dvc/tmp/exps and deletes it afterwards; the store must not follow them there."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def experiment_name() -> str:
    """``MLFLOW_EXPERIMENT_NAME`` if set, else ``batchnorm-mnist``."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_MLFLOW_EXPERIMENT


def default_uri(root: Path | None = None) -> str:
    """The project's own store: ``sqlite:///<root>/mlflow.db``."""
    return f"sqlite:///{(root or project_root()).resolve() / STORE_DB}"


def default_artifacts(root: Path | None = None) -> Path:
    """Where the project's own store keeps artifacts: beside mlflow.db, not in ./mlruns."""
    return (root or project_root()).resolve() / STORE_ARTIFACTS


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :func:`default_uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri(root)


def redact(uri: str) -> str:
    """The URI with any password replaced by ***: what every message shows."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_text(text: str, uri: str | None = None) -> str:
    """``text`` with the tracking URI's password (if any) replaced by ***, wherever it appears."""
    password = urllib.parse.urlsplit(uri or tracking_uri()).password
    return text.replace(password, "***") if password else text


def store_uri(uri: str) -> str:
    """The URI MLflow is given. ``postgresql://`` names SQLAlchemy's default PostgreSQL driver,
    psycopg 3, which is not installed; psycopg2 is, so use it (``postgresql+psycopg2://``). An
    HTTP(S) URI loses its credentials (see :func:`server_credentials`): MLflow prints the URI it
    is given ("View run at ..."), and a password must not be in it."""
    for plain in ("postgresql://", "postgres://"):
        if uri.startswith(plain):
            return "postgresql+psycopg2://" + uri[len(plain) :]
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def server_credentials(uri: str) -> dict[str, str]:
    """Credentials in an HTTP(S) URI as MLflow's own variables (MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD), which its client sends as basic auth."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.username:
        return {}
    username, password = CREDENTIAL_VARIABLES
    found = {username: urllib.parse.unquote(parts.username)}
    if parts.password:
        found[password] = urllib.parse.unquote(parts.password)
    return found


def credentials(uri: str) -> dict[str, str]:
    """What a process needs to reach the store at ``uri`` beside the URI itself: the
    credentials in it, else MLflow's credential variables if set here. A job carries them in
    its request: a worker process started earlier, or on another machine, has not got them."""
    return server_credentials(uri) or {name: os.environ[name] for name in CREDENTIAL_VARIABLES if os.environ.get(name)}


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail within ``timeout`` seconds, with one message naming the URI (password redacted), if
    a tracking server or database does not answer: before MLflow's own retries, which take
    minutes and print pages of tracebacks."""
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri, timeout)
    elif scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        _check_database(uri, timeout)


def _check_server(uri: str, timeout: float) -> None:
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    health = urllib.parse.urlunsplit(parts._replace(netloc=host, path=parts.path.rstrip("/") + "/health"))
    request = urllib.request.Request(health)
    username = parts.username or os.environ.get(CREDENTIAL_VARIABLES[0])
    password = parts.password or os.environ.get(CREDENTIAL_VARIABLES[1])
    if username and password:  # credentials in the URI are basic auth, as MLflow's client sends them
        import base64

        token = base64.b64encode(f"{urllib.parse.unquote(username)}:{urllib.parse.unquote(password)}".encode())
        request.add_header("Authorization", f"Basic {token.decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow tracking server {redact(uri)} answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise TrackingError(f"MLflow tracking server {redact(uri)} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = redact_text(str(getattr(exc, "reason", exc)), uri)
        raise TrackingError(f"MLflow tracking server {redact(uri)} is unreachable: {reason}") from None


def _check_database(uri: str, timeout: float) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(store_uri(uri), connect_args={"connect_timeout": int(timeout)})
        with engine.connect():
            pass
        engine.dispose()
    except ModuleNotFoundError as exc:
        raise TrackingError(
            f"MLflow tracking store {redact(uri)}: its database driver is not installed ({exc.name})"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise TrackingError(f"MLflow tracking store {redact(uri)} is unreachable: {redact_text(first, uri)}") from None
