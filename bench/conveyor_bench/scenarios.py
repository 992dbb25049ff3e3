"""The scenarios of `make bench`; each returns rows of figures (dicts) for the report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from conveyor_bench.stack import Stack

#: The compose service of each system, and its consumers per replica (processes).
SERVICES = {
    "conveyor": "worker",
    "stock-celery": "stock-celery",
    "dramatiq": "dramatiq",
    "ceiling": "ceiling",
    "io": "io-worker",
}
#: Consumers that answer `ready` per replica: Celery nodes answer pings once each;
#: Dramatiq and the ceiling count their processes.
CONSUMERS_PER_REPLICA = {"conveyor": 1, "stock-celery": 1, "dramatiq": 2, "ceiling": 2, "io": 1}
DRAIN_SYSTEMS = ("ceiling", "stock-celery", "dramatiq", "conveyor")


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does: `full` for figures, `quick` for a smoke run."""

    drain_tasks: int
    replicas: tuple[int, ...]
    scale_replicas: tuple[int, ...]
    latency_seconds: float
    api_seconds: float
    batch_tasks: int
    publish_tasks: int
    io_tasks: int
    event_pairs: int

    @classmethod
    def full(cls) -> Sizes:
        """Figures worth comparing: each drain takes seconds, not milliseconds."""
        return cls(10_000, (1, 2, 4), (1, 2, 3, 4, 6), 20, 10, 20_000, 5_000, 3_000, 2)

    @classmethod
    def quick(cls) -> Sizes:
        """Every step once, small: shows the bench works, says nothing about speed."""
        return cls(300, (1,), (1, 2), 2, 2, 1_000, 200, 60, 1)


class Scenarios:
    """Runs the scenarios against one stack."""

    def __init__(self, stack: Stack, sizes: Sizes, log: Any = print) -> None:
        self.drain_systems = DRAIN_SYSTEMS
        self.stack = stack
        self.sizes = sizes
        self.log = log

    # ---- drain ---------------------------------------------------------------------

    def drain_once(
        self,
        system: str,
        replicas: int,
        tasks: int,
        env: dict[str, str] | None = None,
        task: str = "noop",
    ) -> dict[str, Any]:
        """Start `replicas` consumers, freeze them, fill the queue, thaw, time the drain."""
        service = SERVICES[system]
        if system == "ceiling":
            self.stack.agent("reset")
        self.stack.only(service, replicas, env=env)
        expect = replicas * CONSUMERS_PER_REPLICA[system]
        self.stack.agent("ready", "--system", system, "--expect", str(expect), "--timeout", "120")
        ids = self.stack.containers(service)
        with self.stack.frozen(ids):
            agent = self.stack.agent_process(
                "drain", "--system", system, "--tasks", str(tasks), "--task", task
            )
            assert agent.stdin and agent.stdout
            filled = json.loads(agent.stdout.readline() or "{}")
            if "filled" not in filled:
                raise RuntimeError(f"{system}: the queue was not filled")
            unfrozen_at = time.time()
            self.stack.run("docker", "unpause", *ids)
            agent.stdin.write(f"{unfrozen_at}\n")
            agent.stdin.flush()
            out, _ = agent.communicate(timeout=900)
        if agent.returncode != 0:
            raise RuntimeError(f"{system}: the drain agent exited {agent.returncode}")
        row = dict(json.loads(out.strip().splitlines()[-1]))
        row.update(replicas=replicas, fill_seconds=filled["fill_seconds"])
        self.log(f"  drain {system:13} x{replicas}: {row['tasks_per_second']:>9,.0f} tasks/s")
        return row

    def drain(self) -> list[dict[str, Any]]:
        """Every system at 1, 2 and 4 replicas, N noop tasks each."""
        rows = []
        for replicas in self.sizes.replicas:
            for system in self.drain_systems:
                rows.append(self.drain_once(system, replicas, self.sizes.drain_tasks))
        return rows

    def events_cost(self) -> list[dict[str, Any]]:
        """Conveyor at one replica with task events on, then off, in alternating pairs.

        Back-to-back pairs price the events, not the drift of a shared machine over the
        minutes between the drain scenario and this one (one run each can differ by 25 %).
        """
        rows = []
        for pair in range(1, self.sizes.event_pairs + 1):
            for events in ("on", "off"):
                env = {"WORKER_SEND_TASK_EVENTS": "true" if events == "on" else "false"}
                row = self.drain_once("conveyor", 1, self.sizes.drain_tasks, env=env)
                row.update(system=f"conveyor (task events {events})", events=events, pair=pair)
                rows.append(row)
        return rows

    def scale(self, drained: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Conveyor's drain against replicas (reusing the drain scenario's runs)."""
        known = {r["replicas"]: r for r in drained if r["system"] == "conveyor"}
        rows = []
        for replicas in self.sizes.scale_replicas:
            row = known.get(replicas) or self.drain_once(
                "conveyor", replicas, self.sizes.drain_tasks
            )
            rows.append(row)
        return rows

    # ---- latency -------------------------------------------------------------------

    def latency(self) -> list[dict[str, Any]]:
        """`add` at 200/s: Conveyor through its API, stock Celery by delay(), the ceiling."""
        rows = []
        for system in ("ceiling", "stock-celery", "conveyor"):
            if system == "ceiling":
                self.stack.agent("reset")
            self.stack.only(SERVICES[system], 1)
            expect = CONSUMERS_PER_REPLICA[system]
            self.stack.agent("ready", "--system", system, "--expect", str(expect))
            seconds = str(self.sizes.latency_seconds)
            row = self.stack.agent(
                "latency", "--system", system, "--rate", "200", "--seconds", seconds
            )
            self.log(
                f"  latency {system:13}: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
            )
            rows.append(row)
        return rows

    # ---- enqueue -------------------------------------------------------------------

    def enqueue(self) -> list[dict[str, Any]]:
        """The API's single and batch submissions (no worker running), and the baselines'."""
        self.stack.only(None, 0)
        since = time.time() - 1
        single = self.stack.agent("api-single", "--seconds", str(self.sizes.api_seconds))
        single.update(system="conveyor", kind="single (API, wrk)")
        self.log(f"  enqueue single: {single['requests_per_second']:,.0f} requests/s")
        batch = self.stack.agent(
            "api-batch", "--tasks", str(self.sizes.batch_tasks), "--batch", "1000"
        )
        batch.update(system="conveyor", kind="batch (API, 1,000 per request)")
        self.log(f"  enqueue batch: {batch['tasks_per_second']:,.0f} tasks/s")
        self.stack.agent("settle", "--since", str(since))
        self.stack.scale("worker", 2)
        self.stack.agent("settle", "--timeout", "900")
        rows = [single, batch]
        n = str(self.sizes.publish_tasks)
        for system, kind, batch_size in (
            ("stock-celery", "single (delay())", "1"),
            ("stock-celery", "batch (pipelined)", "1000"),
            ("dramatiq", "single (send())", "1"),
            ("ceiling", "single (LPUSH)", "1"),
            ("ceiling", "batch (pipelined LPUSH)", "1000"),
        ):
            tasks = n if batch_size == "1" else str(self.sizes.batch_tasks)
            row = self.stack.agent(
                "publish", "--system", system, "--tasks", tasks, "--batch", batch_size
            )
            row["kind"] = kind
            rows.append(row)
        return rows

    def redis_benchmark(self) -> list[dict[str, Any]]:
        """redis-benchmark LPUSH and RPOP in the Redis container: what Redis itself does."""
        rows = []
        requests = "20000" if self.sizes.drain_tasks < 1000 else "200000"
        for pipeline in ("1", "16"):
            script = (
                'redis-benchmark --user operator -a "$REDIS_PASSWORD" -q --csv '
                f"-t lpush,rpop -n {requests} -P {pipeline} --dbnum 5"
            )
            out = self.stack.compose("exec", "-T", "redis", "sh", "-c", script)
            for line in out.splitlines():
                cells = [c.strip('"') for c in line.split(",")]
                if cells and cells[0] in ("LPUSH", "RPOP"):
                    rows.append(
                        {
                            "system": "redis-benchmark",
                            "command": cells[0],
                            "pipeline": int(pipeline),
                            "requests_per_second": float(cells[1]),
                        }
                    )
        return rows

    # ---- I/O-bound -------------------------------------------------------------------

    #: The default prefork worker, and threads and gevent within its memory (docs/performance.md).
    IO_POOLS = (("prefork", 2), ("threads", 64), ("gevent", 256))

    def io_bound(self) -> list[dict[str, Any]]:
        """Tasks waiting 50 ms on the network, per pool."""
        self.stack.compose("up", "--detach", "--no-build", "io-echo")
        rows = []
        for pool, concurrency in self.IO_POOLS:
            env = {"BENCH_IO_POOL": pool, "BENCH_IO_CONCURRENCY": str(concurrency)}
            tasks = self.sizes.io_tasks if pool == "prefork" else self.sizes.io_tasks * 4
            row = self.drain_once("io", 1, tasks, env=env, task="bench.net_wait")
            row.update(
                system=f"conveyor {pool}",
                pool=pool,
                concurrency=concurrency,
                memory_mib=self.stack.memory_mib("io-worker"),
            )
            rows.append(row)
        self.stack.only(None, 0)
        return rows
