"""The reconciler: publishes again accepted tasks that vanished from Redis."""
