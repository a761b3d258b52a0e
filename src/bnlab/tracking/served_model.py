"""The model MLflow serves: raw pixel rows in, digits (or class probabilities) out.

Each model run logs this file as a model from code (bnlab.tracking.models), with tf_runtime.py,
fixed_order.py and residual.py beside it as code and the trained network as a Keras file, so a served model
needs neither bnlab installed nor its training code. TensorFlow is imported in
``load_context``, after tf_runtime's settings (the kernels pinned to give the same bytes on
every CPU, one thread), and the network runs through fixed_order's compiled inference in
blocks of the same rows, softmax included, as the estimator's ``predict_proba``: the same
probabilities, byte for byte, and no Keras progress bar or structure warning per request.

Request params (in the signature): ``output`` = ``digit`` (default) or ``probabilities``.
The network's class index is the digit: MNIST's classes are 0..9 in order.
"""

from __future__ import annotations

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

INPUT = "pixels"  # float32 rows of 784 raw pixel values, 0..255
OUTPUT_PARAM = "output"
OUTPUTS = ("digit", "probabilities")  # the first is the default
NETWORK = "network"  # the artifact: the trained Keras network (logits out)


def chosen_output(params: dict | None) -> str:
    output = (params or {}).get(OUTPUT_PARAM) or OUTPUTS[0]
    if output not in OUTPUTS:  # MlflowException with this code: an HTTP 400 from the server
        raise MlflowException(
            f"params.{OUTPUT_PARAM} must be one of {', '.join(OUTPUTS)}, not {output!r}", INVALID_PARAMETER_VALUE
        )
    return output


class DigitClassifier(PythonModel):
    def load_context(self, context):
        # Logged beside this file (code_paths): TensorFlow's settings first, then the layer
        # the network is made of and the inference that the estimator uses too.
        import residual  # noqa: F401  (registers SkipInit's layer, which the network may hold)
        from fixed_order import compile_inference
        from tf_runtime import keras

        network = keras.saving.load_model(context.artifacts[NETWORK], compile=False)
        self._infer = compile_inference(network)

    # The hint keeps MLflow from asking for type hints (a warning wherever this file is loaded):
    # an ndarray hint tells it to leave the input to the signature.
    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        """``model_input``: an n×784 array of raw pixels, or ``{INPUT: array}``."""
        output = chosen_output(params)
        pixels = model_input[INPUT] if isinstance(model_input, dict) else model_input
        proba = self._infer(np.asarray(pixels, np.float32)).proba  # the estimator's predict_proba
        return proba if output == "probabilities" else proba.argmax(axis=1).astype(np.int64)


set_model(DigitClassifier())  # what MLflow loads from this file (models from code)
