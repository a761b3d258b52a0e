"""The columns of the CSV files users and dashboards rely on (design.md's contracts). Per job,
the train stage writes probes.csv and steps.csv without the first two; the report stage puts
``variant`` and ``seed`` in front."""

PERCENTILES = {"p15": 15, "p50": 50, "p85": 85}
PROBE_COLUMNS = ("step", "layer", "unit", *PERCENTILES, "dead_fraction")
STEP_COLUMNS = ("step", "val_accuracy", "test_accuracy", "train_mode_accuracy")
PER_SEED_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss")
# sweep.csv: these after the grid's own columns (one per swept setting).
SWEEP_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss", "final_train_loss")
