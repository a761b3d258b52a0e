"""KerasMLPClassifier: the reference MLP, with or without BN, as a scikit-learn estimator."""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bnlab.ml import fit_loop, loop
from bnlab.ml.bn_statistics import batch_norm_layers, current_statistics, install, population_statistics
from bnlab.ml.fit_inputs import INPUT_DTYPES, encode_validation, seed_of
from bnlab.ml.fixed_order import INFERENCE_ROWS
from bnlab.ml.hyperparams import (
    DEFAULTS,
    HYPERPARAMETERS,
    batch_rows,
    check_combination,
    hidden_layers,
    sklearn_constraint,
)
from bnlab.ml.inference import inference_for, loss_accuracy
from bnlab.ml.model import build_mlp, build_optimizer
from bnlab.ml.saving import EstimatorFiles
from bnlab.ml.tf_runtime import keras

HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


class KerasMLPClassifier(EstimatorFiles, ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier in Keras, with optional batch normalization.

    Each hidden layer is ``Dense → BatchNormalization (if batch_norm) → activation``; the output
    layer gives logits, trained with softmax cross-entropy. One epoch runs as one compiled
    TensorFlow loop, and after each epoch the loss and accuracy on the training set (see
    ``measure_rows``) and on ``validation_data`` are measured in inference mode, as the notebook did.

    Parameters
    ----------
    hidden_units : tuple of int, default=(32, 32)
        Units of each hidden Dense layer.
    batch_norm : bool, default=True
        Put BatchNormalization between each hidden Dense layer and its activation.
    activation : {"relu", "elu", "gelu", "selu", "sigmoid", "tanh", "swish", "leaky_relu"}, default="relu"
    learning_rate : float, default=0.01
    batch_size : int or "full", default=32
        Samples per gradient step (the last step of an epoch may be smaller); "full": every
        training sample, that is full-batch gradient descent.
    epochs : int, default=10
        Passes over the training data (unless ``steps`` is set).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and shuffling: with an int, two fits give the same weights.
    verbose : int, default=0
        1 prints one line per epoch.
    optimizer : {"adam", "adamw", "sgd", "rmsprop", "nadam"}, default="adam"
    bn_momentum : float, default=0.99
        Momentum of the BN moving averages (Keras's default).
    rescale : float or None, default=None
        Multiply inputs by this inside the network (e.g. 1/255 for raw pixels), so the saved
        model takes the raw features.
    shuffle : bool, default=True
        Shuffle the training data before each epoch.
    callbacks : list or None, default=None
        Objects with Keras's callback methods (``set_model``, ``on_train_begin``,
        ``on_epoch_end(epoch, logs)``, ``on_train_end``); ``epoch`` counts from 0; ``logs``
        holds the epoch's history values and ``seconds_per_step`` (its steps' wall time).
        ``model.stop_training`` (as set by ``keras.callbacks.EarlyStopping``) ends training after
        that epoch. With an ``every_steps`` attribute (an int), also ``on_step_end(step, logs)``
        every ``every_steps`` optimizer steps (from 1; the compiled loop runs in chunks between);
        with ``batch_steps`` (step numbers), ``on_train_batch_begin(step, {"x": x, "y": y})``
        just before each of those steps, with its mini-batch (float32 rows, class indices),
        and ``on_train_batch_end(step, {})`` just after its update.
    eval_batch_size : int, default=1024
        Rows per block of the per-epoch evaluation and of ``predict`` (the last padded); at the
        default, ``predict_proba`` gives the served model's bytes, on every CPU (``fixed_order``).
    steps : int or None, default=None
        Train for exactly this many optimizer steps (``n_steps_ == steps``), crossing epoch
        boundaries as needed; ``epochs`` is then ignored. The per-epoch history is measured at
        each epoch's end and after the last step.
    bn_position : {"before", "after"}, default="before"
        BN before the activation (Ioffe & Szegedy) or after it.
    init_std : float or None, default=None
        Dense weights drawn from N(0, init_std²) instead of by ``initializer``.
    initializer : {"glorot_uniform", "he_normal"}, default="glorot_uniform"
        How the Dense weights are drawn: Keras's default or He et al. (2015)'s.
    depth : int or None, default=None
        ``depth`` hidden layers, each of ``hidden_units``' one width; None: as listed.
    noise_shift : float, default=0.0
        With BN: after each BN, in training only, add a per-unit shift drawn from
        U(-noise_shift, noise_shift) anew at every step (Santurkar et al.'s "noisy BN").
    noise_scale : float, default=1.0
        With BN: likewise multiply by a per-unit scale between 1/noise_scale and noise_scale
        (log-uniform), drawn anew at every step. 1.0 means no scaling.
    normalization : {"batch", "batch_renorm", "layer", "group"}, default="batch"
        What ``batch_norm=True`` puts where BN sits: BatchNormalization, batch renormalization
        (Ioffe 2017; Keras's ``renorm=True``, corrections clipped to r in [1/3, 3], d in [-5, 5]),
        LayerNormalization or GroupNormalization.
    norm_groups : int, default=8
        GroupNorm's groups; must divide every hidden layer's units into groups of at least 2.
    bn_statistics : {"moving", "recomputed"}, default="moving"
        What BN normalizes with at inference: the moving averages of training's batch statistics,
        or each BN layer's mean and variance over the training rows, recomputed after training
        in inference mode (:mod:`bnlab.ml.bn_statistics`); then ``moving_statistics_`` keeps the
        moving averages.
    momentum : float, default=0.0
        SGD's heavy-ball momentum μ (Keras's ``SGD(momentum=μ)``); only with ``optimizer="sgd"``.
    weight_decay : float, default=0.0
        L2 weight decay λ: λ·W added to each Dense kernel's gradient (the gradient of
        (λ/2)·‖W‖²), not to biases, γ, β or SkipInit's gains (:mod:`bnlab.ml.gradient_rule`).
    gradient_clipping : {"none", "adaptive"}, default="none"
        "adaptive": Brock et al. (2021)'s unit-wise adaptive gradient clipping of every layer but
        the output layer (:mod:`bnlab.ml.gradient_clipping`), before weight decay is added.
    clip_factor : float, default=0.01
        AGC's λ: a unit's gradient is at most ``clip_factor`` times its weights' norm.
    residual : {"none", "skipinit"}, default="none"
        "skipinit": every hidden layer after the first is a residual block, its input plus its
        output times a trainable gain that starts at 0 (De & Smith 2020); all hidden layers then
        need one width.
    measure_rows : int or None, default=None
        The training set's per-epoch loss and accuracy and BN's recomputed statistics from its
        first ``measure_rows`` rows only (the same rows every epoch; None: all); training uses all.

    Attributes
    ----------
    model_ : keras.Model
        The trained network (outputs logits).
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.
    history_ : dict of str to list of float
        ``train_loss``, ``train_accuracy`` and, with validation data, ``val_loss`` and
        ``val_accuracy``: one value per epoch.
    n_iter_ : int
        Epochs begun (fewer than ``epochs`` if a callback stopped training; with ``steps``, as
        many as the steps needed, the last one perhaps partial).
    n_steps_ : int
        Optimizer steps taken: ``steps`` if set, else ``n_iter_ * ceil(n_samples / batch_size)``.
    moving_statistics_ : dict of str to ndarray
        With ``bn_statistics="recomputed"``: the moving averages the recomputed statistics
        replaced (``history_`` was measured with them, during training).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from bnlab import KerasMLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = KerasMLPClassifier(epochs=5, rescale=1 / 16, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    >>> len(clf.history_["train_loss"])
    5
    """

    # The hyperparameters' bounds are bnlab.ml.hyperparams's (params.yaml validates with the same).
    _parameter_constraints = {
        **{name: sklearn_constraint(spec) for name, spec in HYPERPARAMETERS.items()},
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "rescale": [Interval(Real, None, None, closed="neither"), None],
        "shuffle": ["boolean"],
        "callbacks": [list, None],
        "eval_batch_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        hidden_units=DEFAULTS["hidden_units"],
        batch_norm=DEFAULTS["batch_norm"],
        activation=DEFAULTS["activation"],
        learning_rate=DEFAULTS["learning_rate"],
        batch_size=DEFAULTS["batch_size"],
        epochs=DEFAULTS["epochs"],
        random_state=None,
        verbose=0,
        optimizer=DEFAULTS["optimizer"],
        bn_momentum=DEFAULTS["bn_momentum"],
        rescale=None,
        shuffle=True,
        callbacks=None,
        eval_batch_size=INFERENCE_ROWS,
        steps=DEFAULTS["steps"],
        bn_position=DEFAULTS["bn_position"],
        init_std=DEFAULTS["init_std"],
        noise_shift=DEFAULTS["noise_shift"],
        noise_scale=DEFAULTS["noise_scale"],
        normalization=DEFAULTS["normalization"],
        norm_groups=DEFAULTS["norm_groups"],
        initializer=DEFAULTS["initializer"],
        depth=DEFAULTS["depth"],
        bn_statistics=DEFAULTS["bn_statistics"],
        momentum=DEFAULTS["momentum"],
        weight_decay=DEFAULTS["weight_decay"],
        gradient_clipping=DEFAULTS["gradient_clipping"],
        clip_factor=DEFAULTS["clip_factor"],
        residual=DEFAULTS["residual"],
        measure_rows=DEFAULTS["measure_rows"],
    ):
        self.hidden_units = hidden_units
        self.batch_norm = batch_norm
        self.activation = activation
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.verbose = verbose
        self.optimizer = optimizer
        self.bn_momentum = bn_momentum
        self.rescale = rescale
        self.shuffle = shuffle
        self.callbacks = callbacks
        self.eval_batch_size = eval_batch_size
        self.steps = steps
        self.bn_position = bn_position
        self.init_std = init_std
        self.noise_shift = noise_shift
        self.noise_scale = noise_scale
        self.normalization = normalization
        self.norm_groups = norm_groups
        self.initializer = initializer
        self.depth = depth
        self.bn_statistics = bn_statistics
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.gradient_clipping = gradient_clipping
        self.clip_factor = clip_factor
        self.residual = residual
        self.measure_rows = measure_rows

    # --- fitting ---------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, validation_data=None):
        """Train on ``X``, ``y``; measure train (and validation) loss and accuracy each epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch; labels must be among those in ``y``.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=INPUT_DTYPES)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got 1 class")
        self.layer_units()
        check_combination(lambda name: getattr(self, name))
        validation = encode_validation(self, validation_data)

        seed = seed_of(self.random_state)
        keras.utils.set_random_seed(seed)  # right before building: weights depend on it
        self.model_ = self._build_network(X.shape[1], len(self.classes_))
        optimizer = build_optimizer(self.optimizer, self.learning_rate, self.momentum)
        self.history_ = {key: [] for key in HISTORY_KEYS[: 4 if validation else 2]}
        fit_loop.train(self, X, y_index.astype(np.int32), validation, optimizer, np.random.default_rng(seed))
        self.__dict__.pop("moving_statistics_", None)  # an earlier fit's
        if self.bn_statistics == "recomputed" and batch_norm_layers(self.model_):
            self.moving_statistics_ = current_statistics(self.model_)
            install(self.model_, population_statistics(self.model_, X[: self.measure_rows]))
        return self

    def _build_network(self, n_features: int, n_classes: int):
        # build_mlp's settings after the shape are this estimator's params of the same names.
        settings = list(inspect.signature(build_mlp).parameters)[3:]
        return build_mlp(n_features, n_classes, self.layer_units(), **{name: getattr(self, name) for name in settings})

    def layer_units(self) -> tuple[int, ...]:
        """Each hidden layer's units (``hidden_units``, or ``depth`` layers of its one width)."""
        units = tuple(self.hidden_units)
        if not units or not all(isinstance(u, Integral) and u > 0 for u in units):
            raise ValueError(f"hidden_units must be a non-empty sequence of positive ints; got {self.hidden_units!r}")
        return hidden_layers(tuple(int(u) for u in units), self.depth)

    def total_steps(self, n_samples: int) -> int:
        """The optimizer steps a fit on ``n_samples`` rows takes, no callback stopping it."""
        return loop.Budget(self.epochs, self.steps).total(-(-n_samples // batch_rows(self.batch_size, n_samples)))

    def _evaluate_epoch(self, X, y, validation) -> dict[str, float]:
        sets = {"train": (X, y), **({"val": validation} if validation is not None else {})}
        return {
            f"{name}_{metric}": value
            for name, (x, y_index) in sets.items()
            for metric, value in zip(("loss", "accuracy"), loss_accuracy(self._infer(x, False).log_proba, y_index))
        }

    # --- inference -------------------------------------------------------------------------

    def _infer(self, X, validate: bool = True):
        if validate:
            check_is_fitted(self)
            X = validate_data(self, X, reset=False, dtype=INPUT_DTYPES)
        return inference_for(self)(X, self.eval_batch_size)

    def predict_proba(self, X):
        """Class probabilities (float64; the softmax compiled with the network, as served)."""
        return self._infer(X).proba

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, as a log-softmax (finite where a probability is 0)."""
        return self._infer(X).log_proba

    def predict(self, X):
        """The most probable class label for each row, in the labels' original type."""
        proba = self.predict_proba(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
