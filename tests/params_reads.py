"""Which params keys a stage reads, recorded while it runs.

Every read of a field of :class:`Params` or :class:`ExperimentParams` (attribute access, or a
``model_dump`` of the object) is recorded as the dvc.yaml key it stands for: ``split``,
``experiments.${key}.seeds``. Reads made while params are validated do not count: validation
reads every key, and a stage that refuses bad params produces nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bnlab.experiments import params as config

CONTAINER = "experiments"  # read on the way to one experiment: its keys are what count


@contextmanager
def recorded_reads(monkeypatch) -> Iterator[set[str]]:
    reads: set[str] = set()
    validating = [0]

    def recorder(cls, key_of):
        original_get = cls.__getattribute__
        original_dump = cls.model_dump

        def get(self, name):
            if name in cls.model_fields and not validating[0]:
                key = key_of(name)
                if key:
                    reads.add(key)
            return original_get(self, name)

        def dump(self, *args, include=None, exclude=None, **kwargs):
            if not validating[0]:
                names = set(include or cls.model_fields) - set(exclude or ())
                reads.update(filter(None, map(key_of, names)))
            return original_dump(self, *args, include=include, exclude=exclude, **kwargs)

        monkeypatch.setattr(cls, "__getattribute__", get)
        monkeypatch.setattr(cls, "model_dump", dump)

    recorder(config.Params, lambda name: None if name == CONTAINER else name)
    recorder(config.ExperimentParams, lambda name: f"experiments.${{key}}.{name}")
    original_parse = config.parse_params

    def parse(*args, **kwargs):
        validating[0] += 1
        try:
            return original_parse(*args, **kwargs)
        finally:
            validating[0] -= 1

    monkeypatch.setattr(config, "parse_params", parse)
    yield reads
