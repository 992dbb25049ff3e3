"""Conveyor's own task packages, each found through a `conveyor.tasks` entry point.

- `demo`: arithmetic and demonstration tasks (DEMO_TASKS, on by default);
- `emails`: `send_email` on the e-mail queue;
- `testing`: `crash` and `tally`, for the test and chaos stacks only (CONVEYOR_TEST_TASKS).

They are written with the same SDK as a team's own packages (`from conveyor import task`).
"""
