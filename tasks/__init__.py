"""Stage logic of the Movie Recommendation Optimizer: one module per pipeline stage.

Each module holds pure functions (DataFrames and arrays in, out) and a thin Prefect ``@task``
shell that reads its inputs, calls the core and writes its outputs through :mod:`tasks.io`.
"""
