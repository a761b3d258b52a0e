"""One small module per DVC stage: read params and inputs, call the library, write outputs."""
