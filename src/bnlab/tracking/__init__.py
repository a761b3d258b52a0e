"""MLflow: where the store is, one owner per run's lifecycle, what a run holds, the logged and
served model, and the per-job cache kept in the store."""
