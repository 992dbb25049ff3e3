"""Faults that meet work in flight: paced submitters and a fault thread that waits for them.

Submitting everything before the first fault (0.5 s for 1,500 tasks) means a producer or
Redis restart never meets a request, and the client's retry path never runs. Here
several submitter threads send small batches and single tasks mixed, paced so that the
submissions spread over the whole fault window (a share per fault step, a reserve kept
for after the last fault), and each fault waits, briefly, until a request is in flight
and accepted work is still unfinished. A submission that fails is sent again with the
same idempotency key, as a real client would; the retries are counted per fault.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

#: Share of the submissions held back until the last fault happened.
RESERVE = 0.1
#: Longest a fault waits for a request in flight and unfinished work before it fires.
MEET_WORK_SECONDS = 10.0
#: Seconds between a failed submission and its retry (the producer or Redis is down).
RETRY_PAUSE = 0.3

#: Sends one submission of `size` items under `key`; the response is the API's answer.
Post = Callable[[httpx.Client, int, int, str], httpx.Response]


@dataclass
class FaultedRun:
    """What every faulted run reports, besides its own counts."""

    planned_faults: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    fault_log: list[str] = field(default_factory=list)
    #: Per fault, in order: requests in flight and accepted-but-unfinished work at the
    #: moment it fired.
    requests_in_flight: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    #: Submissions sent again (same idempotency key) after a failure, in all and per
    #: fault (those between that fault and the next).
    client_retries: int = 0
    retries_after: dict[str, int] = field(default_factory=dict)
    #: Seconds from the last fault to the last execution (must be > 0).
    drain_after_last_fault_seconds: float | None = None

    def fault_problems(self) -> list[str]:
        """Planned faults that did not happen, or happened with no work to meet."""
        problems = []
        done = sum(self.faults.values())
        if done != len(self.planned_faults):
            problems.append(f"{done} of {len(self.planned_faults)} planned faults happened")
        for i, fault in enumerate(self.planned_faults[: len(self.requests_in_flight)]):
            if self.requests_in_flight[i] == 0:
                problems.append(f"fault {i + 1} ({fault}) met no request in flight")
            if self.unfinished[i] == 0:
                problems.append(f"fault {i + 1} ({fault}) met no unfinished work")
        if self.drain_after_last_fault_seconds is None:
            problems.append("no execution was seen after the last fault")
        return problems


def chunk_sizes(total: int, rng: random.Random) -> list[int]:
    """Single submissions and batches of 2 to 20, mixed, adding up to `total`."""
    sizes = []
    left = total
    while left:
        size = 1 if rng.random() < 0.3 else rng.randint(2, 20)
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


class Pacer:
    """How many items may be submitted by now: a share per fault step, spread in time.

    Step k (after k faults) releases its share linearly over two intervals, so at the
    next fault (one interval later) the submitters are still sending; after the last
    fault everything left (the reserve with it) is released.
    """

    def __init__(self, total: int, faults: int, interval: float) -> None:
        self.total, self.steps, self.interval = total, faults + 1, interval
        self._done_faults = 0
        self._step_started = time.monotonic()
        self._lock = threading.Lock()

    def fault_done(self) -> None:
        """A fault happened: the next step's share starts."""
        with self._lock:
            self._done_faults += 1
            self._step_started = time.monotonic()

    def allowed(self) -> float:
        """Items that may have been submitted by now."""
        with self._lock:
            if self._done_faults >= self.steps - 1:
                return float(self.total)
            share = self.total * (1 - RESERVE) / (self.steps - 1)
            ramp = min(1.0, (time.monotonic() - self._step_started) / (2 * self.interval))
            return share * (self._done_faults + ramp)


class Submitters:
    """Threads that submit the planned chunks, paced, retrying with the same key."""

    def __init__(
        self, client: Callable[[], httpx.Client], post: Post, sizes: list[int], pacer: Pacer,
        threads: int = 4,
    ) -> None:  # fmt: skip
        self.client, self.post, self.pacer = client, post, pacer
        self.sizes = sizes
        self.accepted: list[str] = []
        self.in_flight = 0
        self.retries = 0
        self.error: BaseException | None = None
        self._next = 0
        self._claimed = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        """Start every submitter thread."""
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        """Wait until every chunk was accepted; re-raise a submitter's error."""
        for thread in self._threads:
            thread.join()
        if self.error is not None:
            raise self.error

    def accepted_count(self) -> int:
        """Items accepted so far."""
        with self._lock:
            return len(self.accepted)

    def _take(self) -> tuple[int, int] | None:
        """The next chunk (index, size) once the pacer allows it; None when all are taken."""
        while True:
            with self._lock:
                if self._next >= len(self.sizes):
                    return None
                index, size = self._next, self.sizes[self._next]
                if self._claimed + size <= self.pacer.allowed():
                    self._next += 1
                    self._claimed += size
                    return index, size
            time.sleep(0.01)

    def _work(self) -> None:
        try:
            with self.client() as client:
                while (chunk := self._take()) is not None:
                    self._submit(client, *chunk)
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def _submit(self, client: httpx.Client, index: int, size: int) -> None:
        """Send one chunk until the API accepts it; the same key on every attempt."""
        key = f"chaos-{uuid.uuid4()}"
        while True:
            with self._lock:
                self.in_flight += 1
            try:
                response = self.post(client, index, size, key)
            except httpx.HTTPError:
                response = None
            finally:
                with self._lock:
                    self.in_flight -= 1
            if response is not None and response.status_code in (200, 202):
                body = response.json()
                ids = body["ids"] if "ids" in body else [body["id"]]
                with self._lock:
                    self.accepted += ids
                return
            if response is not None and response.status_code not in (429, 502, 503, 504):
                raise AssertionError(f"submission refused: {response.status_code} {response.text}")
            with self._lock:
                self.retries += 1
            time.sleep(RETRY_PAUSE)


class Faults(threading.Thread):
    """Injects the planned faults `interval` s apart, each when work is in flight."""

    def __init__(
        self, report: FaultedRun, inject: Callable[[str], str], submitters: Submitters,
        pacer: Pacer, unfinished: Callable[[], int], interval: float,
    ) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.report, self.inject, self.submitters = report, inject, submitters
        self.pacer, self.unfinished, self.interval = pacer, unfinished, interval
        self.last_fault = time.monotonic()
        self.error: BaseException | None = None
        self._retries_before: list[int] = []

    def run(self) -> None:
        """Inject every planned fault; an error is kept for the main thread."""
        retries_before = self._retries_before
        try:
            for fault in self.report.planned_faults:
                time.sleep(self.interval)  # pacing between faults, not synchronisation
                in_flight, unfinished = self._meet_work()
                self.report.requests_in_flight.append(in_flight)
                self.report.unfinished.append(unfinished)
                retries_before.append(self.submitters.retries)
                started = time.monotonic()
                detail = self.inject(fault)
                kind = fault.partition(":")[0]
                self.report.faults[kind] = self.report.faults.get(kind, 0) + 1
                self.report.fault_log.append(
                    f"{fault} {detail} ({time.monotonic() - started:.1f} s; "
                    f"{in_flight} request(s) in flight, {unfinished} unfinished)"
                )
                self.last_fault = time.monotonic()
                self.pacer.fault_done()
        except BaseException as exc:  # re-raised by the main thread
            self.error = exc

    def _meet_work(self) -> tuple[int, int]:
        """Wait (at most MEET_WORK_SECONDS) for a request in flight and unfinished work."""
        deadline = time.monotonic() + MEET_WORK_SECONDS
        while True:
            in_flight = self.submitters.in_flight
            unfinished = self.unfinished() if in_flight else 0
            if (in_flight and unfinished) or time.monotonic() > deadline:
                return in_flight, unfinished
            time.sleep(0.005)

    def count_retries(self) -> None:
        """Once the submitters ended: retries in all, and those after each fault (up to
        the next one, or the end)."""
        self.report.client_retries = self.submitters.retries
        marks = [*self._retries_before, self.submitters.retries]
        for i, fault in enumerate(self.report.planned_faults[: len(self._retries_before)]):
            self.report.retries_after[f"{i + 1}:{fault}"] = marks[i + 1] - marks[i]
