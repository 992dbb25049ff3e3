"""The producer: an HTTP API (under gunicorn) and the `conveyor` CLI that put work into Conveyor."""
