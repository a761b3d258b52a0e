"""What a local worker process holds before its first job: imported once, by the forkserver
that the workers are forked from (:func:`bnlab.execution.local.start_forkserver`), so that they share it."""

import gc
import os
from importlib import import_module

from bnlab.execution import heap, job, libc, training  # noqa: F401  (TensorFlow, MLflow)
from bnlab.tracking import job_cache, job_runs, runs  # noqa: F401

# What a job imports on first use besides (found by comparing sys.modules before and after a
# job): each worker would hold its own copy. Only a saving: a name missing from another
# version of a library is skipped.
FIRST_USE = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "mlflow.tracing.processor.otel",
    "git",
    "pyarrow.pandas_compat",
    "pandas.io.formats.csvs",
    "sklearn.callback",
    "rich.progress",
)
for name in FIRST_USE:
    try:
        import_module(name)
    except ImportError:
        pass

# MLflow maps every installed module to its distribution when a process logs its first model
# (it reads every distribution's metadata: 0.1-0.8 s of a worker's first job). Made here once.
try:
    from mlflow.utils.requirements_utils import _init_modules_to_packages_map

    _init_modules_to_packages_map()
except ImportError:
    pass

job.preload_splits(os.environ)

# The forked workers' garbage collectors then never walk these objects: walking writes to
# them, and every page written is copied into the worker (the sharing undone).
gc.freeze()

# One malloc arena for all of a worker's threads. Measured on one fit of the notebook's
# network: 240 MiB above the imports instead of 310-370, at the same speed.
libc.use_one_malloc_arena()
heap.keep_large_buffers()  # TensorFlow's large buffers reused, not mapped anew each time

# The import ran TensorFlow's start-up code once, here; the workers never run it again. Its
# library pages (about 300 MiB, mapped by this server alone) leave memory now; the pages a job
# runs come back from the file when a worker first runs them.
libc.page_out_read_only_files()
