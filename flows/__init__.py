"""Prefect flows and the ``movierec`` command: wiring only, no stage logic."""
