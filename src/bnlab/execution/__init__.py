"""Where training jobs run: one job start to finish, local workers forked from a forkserver,
or a Dask cluster; and the orchestration of an experiment's jobs."""
