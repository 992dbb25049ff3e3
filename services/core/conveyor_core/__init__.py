"""What every Conveyor service shares: settings, the Celery app, and the task catalogue."""
