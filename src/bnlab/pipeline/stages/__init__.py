"""One small module per DVC stage, run as ``python -m bnlab.pipeline.stages.<stage>``: read
params and inputs, call the components, write outputs."""

DATA_STAGES = ("download", "split")
EXPERIMENT_STAGES = ("train", "evaluate", "report")  # one DVC stage per experiment: train@notebook
PUBLISHING_STAGES = ("results",)  # after every report: docs/results.md
