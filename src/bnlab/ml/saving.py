"""Saving and loading a fitted :class:`bnlab.ml.estimator.KerasMLPClassifier` without pickle,
and pickling it (a Keras model does not pickle reliably: its ``.keras`` bytes travel instead)."""

from __future__ import annotations

import json
import os
import tempfile
from numbers import Integral
from pathlib import Path
from typing import Self

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bnlab.core.layout import MODEL_META_FILE
from bnlab.ml.tf_runtime import keras


class EstimatorFiles:
    """``save``/``load`` and pickling for the estimator (a mixin: it uses ``get_params``,
    ``_build_network`` and the fitted attributes)."""

    def save(self, folder, format: str = "keras") -> Path:
        """Save a fitted estimator without pickle: ``estimator.json`` (parameters, classes,
        history) plus the network, as ``model.keras`` (``format="keras"``) or as
        ``weights.npz`` (``format="npz"``: the same bytes for the same weights, which Keras's
        files are not, as they carry the time they were saved). Load it with :meth:`load`."""
        check_is_fitted(self)
        if format not in ("keras", "npz"):
            raise ValueError(f"format must be 'keras' or 'npz', got {format!r}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if format == "keras":
            self.model_.save(folder / "model.keras")
        else:
            weights = {f"w{i:03d}": w for i, w in enumerate(self.model_.get_weights())}
            with open(folder / "weights.npz", "wb") as handle:
                np.savez(handle, **weights)
        params = {k: v for k, v in self.get_params().items() if k != "callbacks"}
        params["hidden_units"] = list(params["hidden_units"])
        if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
            params["random_state"] = None  # a RandomState object has no JSON form
        meta = {
            "params": params,
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "n_features_in": self.n_features_in_,
            "history": self.history_,
            "n_steps": self.n_steps_,
        }
        (folder / MODEL_META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder) -> Self:
        """Load what :meth:`save` wrote. A ``model.keras`` is read in Keras's safe mode; a
        ``weights.npz`` is read without pickle into a network built from the parameters."""
        folder = Path(folder)
        meta = json.loads((folder / MODEL_META_FILE).read_text())
        params = meta["params"]
        params["hidden_units"] = tuple(params["hidden_units"])
        estimator = cls(**params)
        estimator.classes_ = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        estimator.n_features_in_ = meta["n_features_in"]
        estimator.history_ = meta["history"]
        estimator.n_iter_ = len(meta["history"]["train_loss"])  # one entry per epoch begun
        estimator.n_steps_ = meta["n_steps"]
        if (folder / "weights.npz").exists():
            model = estimator._build_network(estimator.n_features_in_, len(estimator.classes_))
            with np.load(folder / "weights.npz", allow_pickle=False) as npz:
                model.set_weights([npz[name] for name in sorted(npz.files)])
            estimator.model_ = model
        else:
            estimator.model_ = keras.saving.load_model(folder / "model.keras", safe_mode=True)
        return estimator

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_inference", None)  # compiled functions are rebuilt on demand
        if "model_" in state:
            # A Keras model does not pickle reliably; carry its .keras file's bytes instead.
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                self.model_.save(path)
                state["model_"] = Path(path).read_bytes()
        return state

    def __setstate__(self, state):
        model_bytes = state.get("model_")
        if isinstance(model_bytes, bytes):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                Path(path).write_bytes(model_bytes)
                state["model_"] = keras.saving.load_model(path, safe_mode=True)
        self.__dict__.update(state)
