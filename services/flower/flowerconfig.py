"""Flower's configuration, read by `celery flower --conf=/app/flowerconfig.py`.

Credentials and tunables come from the same typed settings as every other service;
nothing here has a default password.
"""

from flower.views.monitor import Metrics as _Metrics
from tornado.web import authenticated as _authenticated

from conveyor_core.settings import FlowerSettings

_settings = FlowerSettings()

# Flower serves /metrics without asking who is there; it lists task names, workers and
# counts. Behind the same basic auth as every other page here (Prometheus sends it with
# `basic_auth:`); /healthcheck stays open for the container's health probe.
_Metrics.get = _authenticated(_Metrics.get)

# Tornado's option, applied to the root logger: Flower's and Celery's lines (LOG_LEVEL).
logging = _settings.log_level.lower()
address = "0.0.0.0"  # noqa: S104  # inside the container; compose publishes it on 127.0.0.1
port = 5555
basic_auth = [f"{_settings.flower_user}:{_settings.flower_password.get_secret_value()}"]
# --db does nothing without persistent=True: keep task and worker state across restarts.
persistent = True
# Flower (shelve) appends ".db" itself: this makes /var/lib/conveyor/flower/flower.db.
db = "/var/lib/conveyor/flower/flower"
state_save_interval = 60_000  # milliseconds
purge_offline_workers = _settings.flower_purge_offline_workers
read_only = _settings.flower_read_only
if _settings.flower_cookie_secret.get_secret_value():
    cookie_secret = _settings.flower_cookie_secret.get_secret_value()
max_tasks = 10_000
