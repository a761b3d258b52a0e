"""From results to findings: statistics across seeds, sweep and probe tables, figures, the
CSV columns of the reports, and the report an experiment's stage writes."""
