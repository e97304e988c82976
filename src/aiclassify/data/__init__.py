"""Datasets: discovery of splits, validation of files, the demo set and tf.data pipelines."""
