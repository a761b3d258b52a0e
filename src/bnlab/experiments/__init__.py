"""Experiments as data: params.yaml validated into typed settings, and the jobs (variant,
seed, grid point) each experiment declares. No TensorFlow, no MLflow."""
