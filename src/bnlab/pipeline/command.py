"""How a stage runs as a command: its arguments, params validated first, and one way to end.

Expected failures (bad params, bad data, unreachable sources or tracking server, unwritable
outputs) end with one message on stderr that names the problem and a non-zero exit, not a
traceback. SIGTERM is handled like Ctrl-C, so MLflow runs end KILLED and no partial output is
kept. Nothing here imports TensorFlow or MLflow: the errors of the modules a stage imported
are looked up in ``sys.modules``.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from collections.abc import Callable

from bnlab.core.atomic import OutputError, is_write_error, write_error
from bnlab.core.settings import ParamsError
from bnlab.data.mnist import DataError  # also every source failing (sources.AllSourcesFailed)

EXIT_PARAMS, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
# Errors of modules only some stages import: (module, class name).
LOADED_ERRORS = (
    ("bnlab.execution.settings", "WorkersError"),
    ("bnlab.execution.job", "JobFailed"),
    ("bnlab.tracking.store", "TrackingError"),
    ("bnlab.pipeline.serve", "ModelNotFound"),
)


def expected_errors() -> tuple[type[BaseException], ...]:
    errors = [DataError, OutputError, FileNotFoundError]
    errors += [getattr(sys.modules[module], name) for module, name in LOADED_ERRORS if module in sys.modules]
    if "mlflow" in sys.modules:
        errors.append(sys.modules["mlflow"].exceptions.MlflowException)
    return tuple(errors)


def describe(exc: BaseException) -> str:
    """One readable message; MLflow's own errors get the store's URI in front, and no
    password appears in any message."""
    store = sys.modules.get("bnlab.tracking.store")  # only stages that track import it (and MLflow)
    if store is None:
        return str(exc)
    if "mlflow" in sys.modules and isinstance(exc, sys.modules["mlflow"].exceptions.MlflowException):
        lines = (exc.message or str(exc)).strip().splitlines()
        # A database driver's own line says what went wrong ("(sqlite3.OperationalError)
        # database or disk is full"); MLflow's first line may only say where.
        driver = [line.strip() for line in lines if re.match(r"\s*\(\w+(\.\w+)+\) ", line)]
        first = driver[0] if driver else lines[0] if lines else type(exc).__name__
        return store.redact_text(f"MLflow tracking store {store.redact(store.tracking_uri())} failed: {first}")
    return store.redact_text(str(exc))


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def finish(name: str, work: Callable[[], None]) -> int:
    """Run ``work`` as command ``bnlab <name>``: its exit status, and one line on stderr for
    an expected failure."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        work()
    except ParamsError as exc:
        print(f"bnlab {name}: error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except KeyboardInterrupt:
        print(f"bnlab {name}: interrupted; no output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected_errors() as exc:
        print(f"bnlab {name}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a full disk outside the outputs: MLflow copying an artifact
        if not is_write_error(exc):
            raise
        print(f"bnlab {name}: error: {write_error('an output', exc)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def stage_main(
    name: str, description: str, run: Callable, argv: list[str] | None = None, per_experiment: bool = False
) -> int:
    """A stage's command line: ``[experiment] [--params FILE]``. The params are validated
    first: a bad one is refused in well under a second, before the stage imports TensorFlow
    and MLflow (seconds)."""
    from bnlab.experiments.params import load_params

    parser = argparse.ArgumentParser(prog=f"bnlab {name}", description=description)
    if per_experiment:
        parser.add_argument("experiment", help="an experiment declared in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    args = parser.parse_args(argv)

    def work() -> None:
        params = load_params(args.params)
        if per_experiment:
            params.experiment(args.experiment)
            run(args.experiment, args.params)
        else:
            run(args.params)

    return finish(name, work)
