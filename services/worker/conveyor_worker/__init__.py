"""The Celery worker: task implementations and the worker's own health reporting."""
