"""Configuration-affine scheduling: which job a free worker takes next.

A process compiles each network configuration it meets once (bnlab.ml.compiled: seconds per
configuration); a machine's XLA program cache (bnlab.ml.xla_cache) saves part of that for its
other processes. So a free worker takes, in this order:

1. a job of a configuration it has run before: nothing to compile;
2. a job of a configuration no worker has met (the one with most jobs left): compiled once;
3. else a job of the configuration with most jobs left: compiled a second time, but both
   workers stay busy to the end.

Jobs of one configuration keep their planned order. Where a job runs never changes its bytes.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable

from bnlab.experiments.jobs import job_probes, job_settings

# Settings a compiled function takes as a value, not in its shape: jobs differing only there
# share every compiled function (the learning rate is a variable copied into the template).
RUNTIME_VALUES = ("learning_rate",)


def configuration(request) -> str:
    """What decides a job's compiled functions: its network and training settings but those in
    RUNTIME_VALUES, and its experiment's probes (which compile functions of their own)."""
    experiment = request.params.experiment(request.job.experiment)
    settings = job_settings(experiment, request.job).model_dump()
    for name in RUNTIME_VALUES:
        settings.pop(name, None)
    probes = job_probes(experiment, request.job)
    probes = probes.model_dump() if probes is not None else None
    return json.dumps([settings, probes], sort_keys=True, default=str)


class AffineQueue:
    """The jobs not yet handed out, by configuration; :meth:`take` hands the next to a place
    (a worker process, or a machine whose processes share a program cache)."""

    def __init__(self, requests: Iterable, key: Callable[[object], Hashable] = configuration):
        self._pending: OrderedDict[Hashable, deque] = OrderedDict()
        for request in requests:
            self._pending.setdefault(key(request), deque()).append(request)
        self._met: dict[Hashable, set[Hashable]] = {}  # place → the configurations it has run

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._pending.values())

    def take(self, place: Hashable):
        """The next job for ``place`` (the module's rule), or None when none is left."""
        left = {config: len(jobs) for config, jobs in self._pending.items() if jobs}
        if not left:
            return None
        met = self._met.setdefault(place, set())
        mine = [config for config in left if config in met]
        everyone = set().union(*self._met.values())
        new = [config for config in left if config not in everyone]
        # max keeps the first of equals: the planned order decides ties
        chosen = mine[0] if mine else max(new or list(left), key=left.__getitem__)
        met.add(chosen)
        return self._pending[chosen].popleft()
