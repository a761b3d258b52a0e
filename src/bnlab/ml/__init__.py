"""The networks and their training: the hyperparameter schema (TensorFlow-free), the Keras
model, the compiled loop, the scikit-learn estimator, probes and evaluation."""
