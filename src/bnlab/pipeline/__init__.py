"""The commands: DVC's stages (glue: read params, call the components, write outputs), the
`bnlab` CLI, the `mlflow run` entry, the serving command and the offline plots page."""
