"""The garbage collector at the end of a job (bnlab.execution.job.return_freed_memory): the
job's garbage is freed, and what lives on (the imports, the compiled programs kept for the next
job) is not walked again by the next job's collections."""

import gc
import weakref

from bnlab.execution.job import return_freed_memory


class Node:
    """An object in a reference cycle: only the collector frees it."""

    def __init__(self):
        self.itself = self


def test_a_jobs_collection_frees_its_cycles_and_leaves_what_lives_on_out_of_later_ones():
    lives_on = []  # a list: tracked by the collector, as a module's objects are
    garbage = weakref.ref(Node())
    try:
        return_freed_memory()
        assert garbage() is None
        assert not any(found is lives_on for found in gc.get_objects())
    finally:
        gc.unfreeze()  # this test process's objects back in its collections
