"""The probes an experiment declares (params.yaml's ``experiments.<E>.probes``), validated:
what is measured inside the networks while they train, and when (bnlab.ml.probes,
bnlab.ml.geometry, bnlab.ml.init_gradients, bnlab.ml.weight_norms, bnlab.ml.sharpness)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from bnlab.core.settings import Strict
from bnlab.data.settings import N_TRAIN_IMAGES
from bnlab.ml.hyperparams import LANDSCAPE_DIRECTIONS

Positive = Annotated[int, Field(gt=0)]


class EtaParams(Strict):
    """Step sizes η as multiples of the learning rate: ``count`` values, log-spaced from
    ``low`` to ``high``."""

    low: Annotated[float, Field(gt=0)]
    high: Annotated[float, Field(gt=0)]
    count: Annotated[int, Field(ge=2, le=50)]

    @model_validator(mode="after")
    def _ordered(self) -> EtaParams:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        return self

    def multiples(self) -> tuple[float, ...]:
        return tuple(float(m) for m in np.geomspace(self.low, self.high, self.count))


class GeometryParams(Strict):
    """Santurkar et al.'s loss landscape and covariate shift around chosen optimizer steps
    (bnlab.ml.geometry)."""

    steps: Annotated[list[Positive], Field(min_length=1)]
    etas: EtaParams
    directions: Annotated[list[Literal[LANDSCAPE_DIRECTIONS]], Field(min_length=1)]

    @field_validator("steps", "directions")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return sorted(value) if all(isinstance(v, int) for v in value) else value


def first_and_every(every: int, total_steps: int) -> list[int]:
    """Step 1 (the network after its first optimizer step: steps count from 1) and every
    ``every``-th step of a fit of ``total_steps`` steps: the probes' shared schedule."""
    return sorted({1, *range(every, total_steps + 1, every)})


# sharpness.steps: the geometry probe's steps, so that λ_max and β-smoothness are read side by side.
AT_GEOMETRY = "geometry"


class SharpnessParams(Strict):
    """λ_max of the training loss's Hessian on the first ``images`` training images
    (bnlab.ml.sharpness), after step 1 and every ``every_steps``-th, or after each of ``steps``
    (a list, or ``geometry``: the geometry probe's)."""

    images: Annotated[int, Field(gt=0, le=N_TRAIN_IMAGES)]
    every_steps: Positive | None = None
    steps: Annotated[list[Positive], Field(min_length=1)] | Literal[AT_GEOMETRY] | None = None

    @model_validator(mode="after")
    def _one_schedule(self) -> SharpnessParams:
        if (self.every_steps is None) == (self.steps is None):
            raise ValueError("give either every_steps or steps: when to measure λ_max")
        if isinstance(self.steps, list) and len(set(self.steps)) != len(self.steps):
            raise ValueError("steps must be distinct")
        return self


class ProbeParams(Strict):
    """Measure the network every ``every_steps`` optimizer steps (see bnlab.ml.probes); with
    ``geometry``, around the steps it names (bnlab.ml.geometry); with ``init_gradients``, its
    pre-activation gradients before the first step (bnlab.ml.init_gradients); with
    ``weight_norms``, its hidden kernels' norms and angular updates at the first step, every
    ``every_steps``-th and the geometry probe's steps (bnlab.ml.weight_norms); with
    ``sharpness``, the top eigenvalue of the training loss's Hessian (bnlab.ml.sharpness)."""

    every_steps: Positive
    images: Annotated[int, Field(gt=0, le=N_TRAIN_IMAGES)] = 1000  # the first validation images
    unit: Annotated[int, Field(ge=0)] = 0  # the fixed unit, in every hidden layer
    geometry: GeometryParams | None = None
    init_gradients: bool = False
    weight_norms: bool = False
    sharpness: SharpnessParams | None = None

    @model_validator(mode="after")
    def _geometry_for_sharpness(self) -> ProbeParams:
        if self.sharpness is not None and self.sharpness.steps == AT_GEOMETRY and self.geometry is None:
            raise ValueError("sharpness.steps is geometry, but there is no geometry probe to take steps from")
        return self

    def weight_norm_steps(self, total_steps: int) -> list[int]:
        """The steps the kernels' norms are recorded after in a fit of ``total_steps`` steps: the
        first (the kernels as initialized), every ``every_steps``-th, as the other probes, and the
        geometry probe's, so that its β-smoothness can be read beside ‖w‖² at each of its steps."""
        steps = set(first_and_every(self.every_steps, total_steps))
        if self.geometry is not None:
            steps |= {step for step in self.geometry.steps if step <= total_steps}
        return sorted(steps)

    def sharpness_steps(self, total_steps: int) -> list[int]:
        """The steps λ_max is measured after in a fit of ``total_steps`` steps."""
        steps, every = self.sharpness.steps, self.sharpness.every_steps
        if steps == AT_GEOMETRY:
            return list(self.geometry.steps)
        if steps is not None:
            return sorted(steps)
        return first_and_every(every, total_steps)
