"""MNIST's bytes: where they come from and how they are verified (sources), the arrays and
their files (mnist), and the seeded split (splits). No TensorFlow, no MLflow."""
