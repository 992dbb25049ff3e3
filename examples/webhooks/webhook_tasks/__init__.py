"""Signed webhook delivery, as a Conveyor task project (see README.md)."""
