"""Flower's configuration, read by `celery flower --conf=/app/flowerconfig.py`.

Credentials and tunables come from the same typed settings as every other service;
nothing here has a default password.
"""

from conveyor_core.settings import FlowerSettings

_settings = FlowerSettings()

address = "0.0.0.0"  # noqa: S104  # inside the container; compose publishes it on 127.0.0.1
port = 5555
basic_auth = [f"{_settings.flower_user}:{_settings.flower_password.get_secret_value()}"]
# --db does nothing without persistent=True: keep task and worker state across restarts.
persistent = True
# Flower (shelve) appends ".db" itself: this makes /var/lib/conveyor/flower/flower.db.
db = "/var/lib/conveyor/flower/flower"
state_save_interval = 60_000  # milliseconds
purge_offline_workers = _settings.flower_purge_offline_workers
max_tasks = 10_000
