"""Executes a pipeline run on this machine: plain Python, callable without Redis or a request."""

from pipelines.runner.run import run_pipeline

__all__ = ["run_pipeline"]
