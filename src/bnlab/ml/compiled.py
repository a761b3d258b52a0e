"""XLA-compiled functions shared by every network of one configuration in a process.

Compiling a training loop with XLA takes about a second, longer than a short fit's epochs, and
a function compiled for one Keras model cannot be called with another's variables (Keras's
optimizers have no stateless update on TensorFlow). So each configuration (the network's Keras
config; the optimizer's, learning rate and name aside) gets one *template*: a network
and optimizer of that configuration, built once per process, over whose variables the functions
are compiled once. A call copies the caller's variables into the template, runs, and copies the
new values back (about 1 ms each way for the ioffe2015 network with Adam's slots; the values are
copied exactly, so a fit gives the same bytes whether or not a template existed before it). A
lock makes that safe from threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence

from bnlab.ml.tf_runtime import keras, tf

_TEMPLATES: dict[str, NetworkTemplate] = {}
_TEMPLATES_LOCK = threading.Lock()


def _key(config) -> str:
    return json.dumps(config, sort_keys=True, default=str)


@tf.function(autograph=False)
def _assign_all(targets, sources):
    for target, source in zip(targets, sources, strict=True):
        target.assign(source)


def _copy(targets: Sequence, sources: Sequence) -> None:
    """Exact copies of ``sources``' values into ``targets`` (Keras variables), as one call:
    TensorFlow's own variables as arguments, so one trace serves every model of a shape
    (a third of the time of one eager assign per variable)."""
    _assign_all([v.value for v in targets], [v.value for v in sources])


class NetworkTemplate:
    """A network of one configuration, its optimizers and the functions compiled over them."""

    def __init__(self, model: keras.Model):
        self.model = model.__class__.from_config(model.get_config())
        if [v.shape for v in self.model.variables] != [v.shape for v in model.variables]:
            raise TypeError(f"{model.name}: a network rebuilt from its config has other variables")
        self.lock = threading.RLock()
        self._optimizers: dict[str, keras.optimizers.Optimizer] = {}
        self._functions: dict[tuple, Callable] = {}

    def optimizer_like(self, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
        """This template's optimizer of ``optimizer``'s configuration (built on its variables)."""
        # Not the learning rate (a variable, copied in) nor the name Keras numbers per instance.
        config = {k: v for k, v in optimizer.get_config().items() if k not in ("learning_rate", "name")}
        key = _key([type(optimizer).__name__, config])
        if key not in self._optimizers:
            twin = optimizer.__class__.from_config(optimizer.get_config())
            twin.build(self.model.trainable_variables)
            self._optimizers[key] = twin
        return self._optimizers[key]

    def function(self, key: tuple, build: Callable[[], Callable]) -> Callable:
        """The function ``build()`` made for ``key`` the first time it was asked for."""
        if key not in self._functions:
            self._functions[key] = build()
        return self._functions[key]

    def loaded(self, model: keras.Model):
        """A context in which the template holds ``model``'s values (for inference)."""
        return _Holding(self, [(self.model.variables, model.variables)], write_back=False)

    def holding(self, model: keras.Model, optimizer, template_optimizer):
        """A context in which the template holds ``model``'s and ``optimizer``'s values (its
        twin ``template_optimizer``'s); on leaving, the values the template then holds go back."""
        pairs = [(self.model.variables, model.variables), (template_optimizer.variables, optimizer.variables)]
        return _Holding(self, pairs, write_back=True)


class _Holding:
    def __init__(self, template: NetworkTemplate, pairs: list, write_back: bool):
        self.template, self.write_back = template, write_back
        self.template_vars = [v for template_vars, _ in pairs for v in template_vars]
        self.own = [v for _, own in pairs for v in own]

    def __enter__(self):
        self.template.lock.acquire()
        _copy(self.template_vars, self.own)
        return self.template

    def __exit__(self, *exc):
        try:
            if self.write_back and exc[0] is None:
                _copy(self.own, self.template_vars)
        finally:
            self.template.lock.release()


def template_for(model: keras.Model) -> NetworkTemplate:
    """The process's template for ``model``'s configuration (made on first use)."""
    key = _key(model.get_config())
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            _TEMPLATES[key] = NetworkTemplate(model)
        return _TEMPLATES[key]
