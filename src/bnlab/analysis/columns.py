"""The columns of the report's CSV files that users and dashboards rely on (design.md's
contracts). The probes' own (probes.csv, steps.csv) are :mod:`bnlab.ml.probe_rows`'s."""

PER_SEED_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss")
# sweep.csv: these after the grid's own columns (one per swept setting).
SWEEP_COLUMNS = ("variant", "seed", "test_accuracy", "test_loss", "final_train_loss")
