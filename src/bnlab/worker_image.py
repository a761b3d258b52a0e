"""What a local worker process holds before its first job: imported once, by the forkserver
that the workers are forked from (:func:`bnlab.workers.start_forkserver`), so that they share it."""

import ctypes
import gc
import os
from importlib import import_module

from bnlab import job_cache, job_runner, tracking, training  # noqa: F401  (TensorFlow, MLflow)

# What a job imports on first use besides (found by comparing sys.modules before and after a
# job): each worker would hold its own copy. Only a saving: a name missing from another
# version of a library is skipped.
FIRST_USE = ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.tracking.sqlalchemy_workspace_store",
             "sqlalchemy.dialects.sqlite", "alembic.command", "mlflow.tracing.processor.otel", "git",
             "pyarrow.pandas_compat", "pandas.io.formats.csvs", "sklearn.callback", "rich.progress")
for name in FIRST_USE:
    try:
        import_module(name)
    except ImportError:
        pass

job_runner.preload_splits(os.environ)

# The forked workers' garbage collectors then never walk these objects: walking writes to
# them, and every page written is copied into the worker (the sharing undone).
gc.freeze()

# One malloc arena for all of a worker's threads: by default each of TensorFlow's threads gets
# its own, and each keeps the memory it freed for itself. Measured on one fit of the notebook's
# network: 240 MiB above the imports instead of 310-370, at the same speed.
M_ARENA_MAX = -8  # malloc.h
try:
    ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)
except (OSError, AttributeError):  # not glibc: its own allocator's habits apply
    pass
