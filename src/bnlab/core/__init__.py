"""What every component shares: the project's paths, atomic writes, the strict settings base
and the import reader that tells which modules a command runs. Imports nothing of bnlab."""
