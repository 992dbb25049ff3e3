"""The Celery application every service shares.

Its configuration is computed lazily from `Settings`, so importing this module needs
no environment (the image's build-time import check relies on that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu import Queue

from conveyor_core.catalog import DEFAULT_QUEUE, known_queues
from conveyor_core.result_store import backend_url
from conveyor_core.settings import Settings, get_settings
from conveyor_core.task_packages import lookup


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for Conveyor: JSON only, at-least-once delivery, bounded waits."""
    transport = {
        # Unacknowledged messages return to the queue after this long (Redis has no
        # broker-side acks); it must exceed the longest task, see Settings._limits_fit.
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": settings.redis_socket_timeout,
        "socket_timeout": settings.redis_socket_timeout,
        "health_check_interval": 25,
        # Sweep for messages past the visibility timeout every restore_interval seconds
        # (kombu's default throttle makes that every 100 s).
        "unacked_restore_interval": settings.restore_interval,
        "unacked_restore_throttle": 1,
        # The sweep's lock: kombu keeps it 300 s if its holder is SIGKILLed mid-sweep,
        # holding every restore back that long. A sweep takes milliseconds, and each
        # restore is a WATCH transaction, so two sweeps at once cannot restore twice.
        "unacked_mutex_expire": max(3 * settings.restore_interval, 15),
        "max_connections": settings.broker_max_connections,
        # None: as many as are due; 0: none (kombu still takes the sweep's mutex).
        "unacked_restore_limit": None if settings.restores_unacked else 0,
        # No retry_on_timeout: kombu only pipelines batch publishes when a timed-out
        # pipeline cannot be replayed (a replay could enqueue tasks twice).
    }
    return {
        "broker_url": settings.redis_url(settings.redis_broker_db, tls_query=False),
        # Each state stored in one round trip (conveyor_core.result_store).
        "result_backend": backend_url(
            settings.redis_url(settings.redis_result_db, tls_query=False)
        ),
        # With REDIS_TLS: verify Redis's certificate and host name (None: plain TCP).
        "broker_use_ssl": settings.redis_ssl_options(),
        "redis_backend_use_ssl": settings.redis_ssl_options(),
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "redis_socket_connect_timeout": settings.redis_socket_timeout,
        "redis_socket_timeout": settings.redis_socket_timeout,
        "redis_retry_on_timeout": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.redis_socket_timeout,
        # JSON only: pickle in a message would be code execution on the worker.
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "result_accept_content": ["json"],
        "result_expires": settings.result_expires,
        "result_extended": True,
        # At-least-once: acknowledge after the task ran, and requeue when its process died.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A redelivered message of a task that already succeeded is not run again.
        "worker_deduplicate_successful_tasks": True,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child or None,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child or None,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # No STARTED state in the result backend (two round trips per task): the worker
        # records the start on the task's hash, where the API reads it, and Flower gets
        # the task-started event.
        "task_track_started": False,
        "task_send_sent_event": settings.task_send_sent_event,
        "worker_send_task_events": settings.worker_send_task_events,
        # A publish that cannot reach Redis fails within a few seconds (the API turns
        # that into a 503) instead of retrying for minutes.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_default_queue": DEFAULT_QUEUE,
        "task_queues": [Queue(name) for name in known_queues()],
        "task_routes": (catalogue_router(settings),),
        "enable_utc": True,
        "timezone": "UTC",
    }


def catalogue_router(settings: Settings) -> Callable[..., dict[str, str] | None]:
    """A Celery router: a catalogue task goes to its task's queue (others: the default).

    A function, not a table, so the task packages are loaded when the first task is
    published, not when the configuration is read.
    """

    def route(name: str, *_: Any, **__: Any) -> dict[str, str] | None:
        spec = lookup(settings, name)
        return {"queue": spec.queue} if spec else None

    return route


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` (read from the environment when None)."""
    app = Celery("conveyor", set_as_current=True)
    app.add_defaults(lambda: celery_config(settings or get_settings()))
    return app


app = create_app()
