"""The `conveyor` command: Conveyor's HTTP API from a terminal, on `conveyor_client`."""
