"""Gunicorn settings for the producer (`gunicorn -c python:conveyor_producer.gunicorn_conf`)."""

import os

bind = f"0.0.0.0:{os.environ.get('PRODUCER_INTERNAL_PORT', '8000')}"
workers = int(os.environ.get("PRODUCER_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# Sync route handlers run in a thread pool of each worker; Celery's producer pool is
# shared by them, so a request does not open a broker connection of its own.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Heartbeat files in memory, not on the (possibly read-only) root filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108
forwarded_allow_ips = "*"
