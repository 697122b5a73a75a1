"""Prefect orchestration of the DVC pipeline: the `s3t` flow (pipeline.py) and its `s3t/full` deployment (serve.py)."""
