"""Batch jobs: train, evaluate, log to MLflow, register and gate promotion."""
