"""Configuration-affine scheduling (bnlab.execution.affinity): a worker keeps to the
configurations it has compiled while that keeps every worker busy."""

from __future__ import annotations

from bnlab.execution.affinity import AffineQueue, configuration
from bnlab.experiments.jobs import jobs, selection_jobs
from bnlab.experiments.params import load_params

from helpers import PROJECT


def drain(queue: AffineQueue, order: list[int]) -> dict[int, list[str]]:
    """Hand jobs to workers in ``order`` (a worker's turn comes when it is free) until none are
    left; each worker's jobs."""
    taken: dict[int, list[str]] = {worker: [] for worker in set(order)}
    for worker in order:
        job = queue.take(worker)
        if job is None:
            break
        taken[worker].append(job)
    return taken


def test_each_worker_keeps_to_one_configuration_and_compiles_it_once():
    queue = AffineQueue(["a1", "a2", "a3", "b1", "b2", "b3"], key=lambda job: job[0])
    taken = drain(queue, [0, 1] * 3)
    assert taken == {0: ["a1", "a2", "a3"], 1: ["b1", "b2", "b3"]}
    assert queue.take(0) is None and len(queue) == 0


def test_a_worker_out_of_its_configurations_first_takes_one_no_one_has_met():
    queue = AffineQueue(["a1", "b1", "b2", "c1", "c2", "c3"], key=lambda job: job[0])
    assert queue.take(0) == "c1"  # the most jobs left first
    assert queue.take(1) == "b1"
    assert queue.take(0) == "c2"
    assert queue.take(1) == "b2"
    assert queue.take(1) == "a1"  # b done: a, which no worker has met, before helping with c
    assert queue.take(1) == "c3"  # then help: both workers busy to the end
    assert queue.take(0) is None


def test_every_job_is_handed_out_exactly_once_whatever_the_order_workers_free_up():
    requests = [f"{config}{i}" for config in "abcde" for i in range(7)]
    queue = AffineQueue(requests, key=lambda job: job[0])
    taken = drain(queue, [0, 1, 1, 0, 2, 2, 2, 1] * 10)
    assert sorted(job for jobs_ in taken.values() for job in jobs_) == sorted(requests)
    for jobs_ in taken.values():  # a configuration's jobs keep their planned order on a worker
        for config in "abcde":
            mine = [job for job in jobs_ if job[0] == config]
            assert mine == sorted(mine)


def test_the_default_experiments_variants_are_two_configurations_and_seeds_share_one():
    params = load_params(PROJECT / "params.yaml")

    class Request:
        def __init__(self, job):
            self.params, self.job = params, job

    requests = [Request(job) for job in jobs("notebook", params.experiment("notebook"))]
    by_config: dict[str, set[str]] = {}
    for request in requests:
        by_config.setdefault(configuration(request), set()).add(request.job.variant)
    assert sorted(map(sorted, by_config.values())) == [["batchnorm"], ["plain"]]
    # a learning-rate grid shares the compiled functions; a batch-size grid does not
    lr = [Request(job) for job in jobs("lr_sweep", params.experiment("lr_sweep")) if job.variant == "batchnorm"]
    assert len({configuration(request) for request in lr}) == 1
    small = params.experiment("small_batches")
    batches = [Request(job) for job in selection_jobs("small_batches", small) if job.seed == small.tune.seeds[0]]
    assert len({configuration(request) for request in batches}) == len(small.variants) * len(small.grid_points())
