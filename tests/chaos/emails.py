"""E-mails under faults: every requested e-mail arrives once, none twice, none lost.

    python -m tests.chaos.emails --emails 1000              (`make chaos-email`)
    python -m tests.chaos.emails --rate --emails 500 [--delay-ms 200]

The first form brings up the chaos project (tests/chaos/run.py's stack and short
limits) with two e-mail workers, makes the mailbox answer 451 to the first
`--refuse` messages, and submits the e-mails over the HTTP API from paced submitter
threads (single e-mails and batches mixed, tests/chaos/pacing.py) while it SIGKILLs an
e-mail worker and restarts Redis, each while a submission is in flight and accepted
e-mails are unsent; a failed submission is sent again with the same idempotency key.
Then it waits for the mailbox to hold every one. The report counts, from the mailbox:
received (distinct e-mails), duplicates kept, copies that arrived again and were dropped
by Message-ID, refusals; from Redis, at the moment of the kill, how many e-mails the
killed worker was in the middle of sending: the only ones whose copy may arrive twice
(see send_records.py), so the dropped copies must not outnumber them; and the faults,
the work each met and the client's retries.

`--rate` measures e-mails per second through one e-mail worker at its default
concurrency, with the mailbox answering at once or `--delay-ms` late.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from tests.chaos.pacing import FaultedRun, Faults, Pacer, Submitters, chunk_sizes
from tests.chaos.run import PORTS, Stack, kill_container, write
from tests.helpers import mailbox_auth

BATCH = 100
#: Counts the killed worker's e-mails caught between "lease taken" and "recorded sent".
COUNT_SENDING = """
local n, cursor = 0, '0'
repeat
  local page = redis.call('scan', cursor, 'match', ARGV[1], 'count', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local value = redis.call('get', key)
    if value and string.sub(value, 1, string.len(ARGV[2])) == ARGV[2] then n = n + 1 end
  end
until cursor == '0'
return n
"""


#: The e-mail run's faults: an e-mail worker SIGKILLed, then Redis restarted.
EMAIL_FAULTS = ["kill", "restart:redis"]


@dataclass
class EmailReport(FaultedRun):
    """What an e-mail chaos run saw."""

    requested: int = 0
    accepted: int = 0
    received: int = 0
    lost: int = 0
    duplicates_kept: int = 0
    copies_dropped_by_message_id: int = 0
    sending_when_killed: int = 0
    refused_by_fault: int = 0
    seconds: float = 0.0
    lost_sample: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why this run fails: an e-mail lost or kept twice, or a fault that missed."""
        problems = self.fault_problems()
        if self.lost:
            problems.append(f"{self.lost} e-mail(s) never arrived")
        if self.duplicates_kept:
            problems.append(f"{self.duplicates_kept} e-mail(s) kept twice")
        if self.copies_dropped_by_message_id > self.sending_when_killed:
            problems.append("more copies dropped by Message-ID than e-mails caught mid-send")
        return problems


def mailbox() -> httpx.Client:
    """A client of the chaos stack's mailbox."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{PORTS['MAILBOX_PORT']}", timeout=30, auth=mailbox_auth()
    )


def email_stack(workers: int) -> Stack:
    """The chaos project (with its e-mail limits) up, with `workers` e-mail workers."""
    stack = Stack(persistence=True)
    stack.up(workers=1)
    stack.scale(workers, "email-worker", wait=True)
    return stack


def email(run_id: str, i: int, count: int) -> dict[str, object]:
    """E-mail number `i` of a run, with its own idempotency key."""
    return {
        "to": [f"user{i}@example.com"],
        "subject": f"chaos {i}",
        "text": f"e-mail {i} of {count}",
        "idempotency_key": f"{run_id}-{i}",
    }


def submit(api: httpx.Client, run_id: str, count: int) -> list[str]:
    """Submit `count` e-mails in batches, each with its own idempotency key; return ids."""
    ids: list[str] = []
    for start in range(0, count, BATCH):
        emails = [email(run_id, i, count) for i in range(start, min(start + BATCH, count))]
        response = api.post("/api/v1/emails/batch", json={"emails": emails})
        response.raise_for_status()
        ids += response.json()["ids"]
    return ids


def post_emails(
    run_id: str, sizes: list[int]
) -> Callable[[httpx.Client, int, int, str], httpx.Response]:
    """Submission `index` of the paced run: its e-mails alone or as a batch, under `key`.

    Chunk `index` holds the e-mails after those of the chunks before it, so each e-mail
    number is sent once whatever order the submitters go in.
    """
    count = sum(sizes)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def post(api: httpx.Client, index: int, size: int, key: str) -> httpx.Response:
        emails = [email(run_id, starts[index] + j, count) for j in range(size)]
        if size == 1:
            return api.post("/api/v1/emails", json=emails[0])
        return api.post("/api/v1/emails/batch", json={"emails": emails, "idempotency_key": key})

    return post


def kill_one_email_worker(stack: Stack) -> str:
    """SIGKILL an e-mail worker's main process from the host; return its host name."""
    victim = stack.compose("ps", "--quiet", "--status", "running", "email-worker").split()[0]
    kill_container(stack, victim)  # Docker's restart policy brings it back
    return victim[:12]  # a container's host name is its short id


def sending_records(stack: Stack, hostname: str) -> int:
    """E-mails whose send lease the worker `hostname` held (and can no longer release)."""
    out = stack.compose(
        "exec", "-T", "redis", "conveyor-redis", "cli", "-n", "1",
        "EVAL", COUNT_SENDING, "0", "conveyor:email:*", f"sending {hostname} ",
    )  # fmt: skip
    return int(out.strip() or 0)


def wait_for_mail(box: httpx.Client, count: int, stall: float) -> float:
    """Until the mailbox keeps `count` messages, or nothing new came for `stall` s.

    Returns when (monotonic) the last new message was seen.
    """
    kept, since = -1, time.monotonic()
    while True:
        now = box.get("/api/stats").json()["kept"]
        if now != kept:
            kept, since = now, time.monotonic()
        if kept >= count or time.monotonic() - since > stall:
            return since
        time.sleep(0.5)


def run(
    emails: int = 1000, refuse: int = 100, stall: float = 150, keep: bool = False,
    interval: float = 4.0, stack: Stack | None = None,
) -> EmailReport:  # fmt: skip
    """One run: refusals, a SIGKILL and a Redis restart while `emails` e-mails go out.

    It brings up its own stack and removes it afterwards (unless `keep`), or runs on a
    `stack` already up (left up, with Redis persistent and two e-mail workers).
    """
    report = EmailReport(requested=emails, planned_faults=list(EMAIL_FAULTS))
    started = time.monotonic()
    own = stack is None
    if stack is None:
        stack = email_stack(workers=2)
    else:
        stack.use_persistence(True)
        stack.scale(2, "email-worker", wait=True)
    try:
        with mailbox() as box:
            box.delete("/api/messages")
            box.put("/api/faults", json={"reject_next": refuse, "code": 451})
            run_id = f"chaos-{int(time.time())}"
            pacer = Pacer(emails, len(EMAIL_FAULTS), interval)
            sizes = chunk_sizes(emails, random.Random(13))
            submitters = Submitters(stack.api, post_emails(run_id, sizes), sizes, pacer)

            def unsent() -> int:
                return max(
                    0, submitters.accepted_count() - int(box.get("/api/stats").json()["kept"])
                )

            faults = Faults(report, email_fault(stack, report), submitters, pacer, unsent, interval)
            submitters.start()
            faults.start()
            faults.join()
            submitters.join()
            faults.count_retries()
            if faults.error is not None:
                raise faults.error
            report.accepted = submitters.accepted_count()
            last_mail = wait_for_mail(box, report.accepted, stall)
            if last_mail > faults.last_fault:
                report.drain_after_last_fault_seconds = round(last_mail - faults.last_fault, 1)
            _tally(report, box)
    finally:
        if own and not keep:
            stack.down()
    report.seconds = round(time.monotonic() - started, 1)
    write("chaos-email", asdict(report))
    return report


def email_fault(stack: Stack, report: EmailReport) -> Callable[[str], str]:
    """`kill`: SIGKILL an e-mail worker (counting what it was sending); `restart:redis`."""

    def inject(fault: str) -> str:
        if fault == "kill":
            hostname = kill_one_email_worker(stack)
            report.sending_when_killed += sending_records(stack, hostname)
            return f"{hostname} ({report.sending_when_killed} mid-send)"
        stack.compose("restart", fault.partition(":")[2])
        return ""

    return inject


def _tally(report: EmailReport, box: httpx.Client) -> None:
    messages = box.get("/api/messages", params={"limit": 5000}).json()["messages"]
    subjects = [m["subject"] for m in messages]
    wanted = {f"chaos {i}" for i in range(report.requested)}
    report.received = len(wanted & set(subjects))
    report.lost = len(wanted - set(subjects))
    report.lost_sample = sorted(wanted - set(subjects))[:10]
    report.duplicates_kept = len(subjects) - len(set(subjects))
    stats = box.get("/api/stats").json()
    report.copies_dropped_by_message_id = stats["duplicates_dropped"]
    report.refused_by_fault = stats["refused_messages"]


def measure_rate(emails: int, delay_ms: int) -> dict[str, float]:
    """E-mails per second through one e-mail worker (default concurrency) to the mailbox."""
    stack = email_stack(workers=1)
    try:
        with mailbox() as box, stack.api() as api:
            box.delete("/api/messages")
            box.put("/api/faults", json={"delay_ms": delay_ms})
            started = time.monotonic()
            submit(api, f"rate-{int(time.time())}", emails)
            wait_for_mail(box, emails, stall=120)
            seconds = time.monotonic() - started
            kept = box.get("/api/stats").json()["kept"]
    finally:
        stack.down()
    result = {
        "emails": kept,
        "delay_ms": delay_ms,
        "seconds": round(seconds, 1),
        "emails_per_second": round(kept / seconds, 1),
    }
    write("email-rate", result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run; exit 1 when an e-mail was lost or kept twice, or a fault missed its work."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--refuse", type=int, default=100, help="451 the first N messages")
    parser.add_argument("--rate", action="store_true", help="measure e-mails per second")
    parser.add_argument("--delay-ms", type=int, default=0, help="(--rate) mailbox reply delay")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    opts = parser.parse_args(argv)
    if opts.rate:
        measure_rate(opts.emails, opts.delay_ms)
        return 0
    report = run(opts.emails, opts.refuse, keep=opts.keep)
    for problem in report.problems():
        print(f"chaos-email: FAILED: {problem}", file=sys.stderr)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
