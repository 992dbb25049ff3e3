"""The one source of configuration: typed settings read from the environment.

Every variable is documented in `.env.example`, except the few in INTERNAL_SETTINGS that
the deployment files set themselves. Secrets are refused when empty or
left at a placeholder value, unless `CONVEYOR_ENV=development`. A secret may also come
from a file named after it (`redis_password`, ...) in CONVEYOR_SECRETS_DIR (default
/run/secrets, where Docker Swarm and Kubernetes mount them); the environment wins.
"""

from __future__ import annotations

import ipaddress
import ssl
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor_core.queue_declarations import EMAIL_QUEUE

#: Values that mean "somebody forgot to set this secret".
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "password", "secret", "admin", "redis", "xxx"}
)
MIN_SECRET_LENGTH = 16
#: SMTP_HOST of the development mailbox (services/mailbox): it keeps every e-mail and
#: delivers none, so a production e-mail worker refuses it.
DEVELOPMENT_MAILBOX = "mailbox"

#: Settings `.env.example` leaves out, and why: the entrypoint or the deployment files
#: (compose, Swarm, Kubernetes) set them for each service, and their defaults are right
#: otherwise. tests/unit/test_defaults.py reads this list.
INTERNAL_SETTINGS: dict[str, str] = {
    "CONVEYOR_ROLE": "the entrypoint sets it to the role it starts",
    "CONVEYOR_SECRETS_DIR": "where Swarm and Kubernetes mount secret files (compose passes "
    "secrets as variables); only tests move it",
    "REDIS_USERNAME": "each role's own Redis user, set per service by the TLS overlay, Swarm "
    "and Kubernetes (deploy/redis/roles.acl)",
    "REDIS_TLS_CA_FILE": "where the TLS overlay, Swarm and Kubernetes mount the CA certificate",
    "WORKER_NAME": "each worker service names its own nodes (worker, email)",
    "WORKER_QUEUES": "each worker service names the queues it consumes (default, email)",
    "WORKER_RESCUE_DIR": "where each deployment mounts the worker-rescue volume",
    "METRICS_PORT": "the container port of /metrics: compose's `expose`, the Kubernetes "
    "Service and Prometheus's scrape configuration name 9100",
    "MAILBOX_SMTP_PORT": "the mailbox container's SMTP port, mailbox:1025 on the backend "
    "network (never published); only tests running the mailbox in-process move it",
    "MAILBOX_HTTP_PORT": "the mailbox container's inbox port; MAILBOX_PORT publishes it",
    "MAILBOX_DATA_DIR": "compose sets it to the mailbox's volume",
    "MAILBOX_FAULTS": "the fault switch, on only in the chaos test stack (make audit "
    "refuses it elsewhere)",
}


#: Log levels every role accepts in LOG_LEVEL (Celery's and gunicorn's names).
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: LOG_LEVEL when unset, for every role (the mailbox too).
LOG_LEVEL_DEFAULT: LogLevel = "INFO"


def upper_log_level(value: object) -> object:
    """A log level in upper case: gunicorn and Python's logging accept either."""
    return value.upper() if isinstance(value, str) else value


class SecretsLocation(BaseSettings):
    """Where secret files are mounted: read before `Settings`, whose class needs it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    #: Docker Swarm and Kubernetes mount secrets here; compose passes them as variables.
    conveyor_secrets_dir: Path = Path("/run/secrets")


def secrets_dir() -> str | None:
    """Where secret files are mounted, if that folder exists (pydantic-settings warns if not)."""
    folder = SecretsLocation().conveyor_secrets_dir
    return str(folder) if folder.is_dir() else None


def check_secret(value: SecretStr, name: str, environment: str) -> SecretStr:
    """Refuse an empty, placeholder or short secret outside development."""
    raw = value.get_secret_value()
    if environment == "development":
        return value
    if raw.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is empty or a placeholder; run `make env` to generate one")
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long")
    return value


class Settings(BaseSettings):
    """Settings shared by every service that talks to Redis (producer, workers, Flower)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, secrets_dir=secrets_dir())

    environment: Literal["development", "production"] = Field(
        "production", validation_alias="CONVEYOR_ENV"
    )
    #: The role the entrypoint started (producer, worker, ...); empty when started otherwise.
    conveyor_role: str = ""
    #: Level of the service's own log and its framework's (gunicorn, Celery, Flower).
    log_level: LogLevel = LOG_LEVEL_DEFAULT
    redis_host: str = "redis"
    redis_port: int = Field(6379, ge=1, le=65535)
    #: The Redis ACL user of this service (producer, worker, email, reconciler, flower:
    #: deploy/redis/roles.acl), with REDIS_PASSWORD its password. Empty: Redis's `default`
    #: user, for a Redis with a password only; Conveyor's own Redis turns `default` off.
    redis_username: str = Field("", pattern=r"^[A-Za-z0-9_-]*$")
    redis_password: SecretStr
    #: Speak TLS to Redis (rediss://), checking its certificate against REDIS_TLS_CA_FILE
    #: and its host name against REDIS_HOST.
    redis_tls: bool = False
    redis_tls_ca_file: Path = Path("/etc/conveyor/tls/ca.crt")
    redis_broker_db: int = Field(0, ge=0, le=15)
    redis_result_db: int = Field(1, ge=0, le=15)
    #: Seconds to wait for Redis to accept a connection or answer a command.
    redis_socket_timeout: float = Field(2.0, gt=0, le=60)

    #: How long results stay in Redis (seconds).
    result_expires: int = Field(86_400, ge=60)
    #: How long a revoke (or a purge) is remembered in Redis (seconds): a copy of the task
    #: that reaches a worker within it never runs. At least RESULT_EXPIRES + MAX_COUNTDOWN
    #: + VISIBILITY_TIMEOUT: the reconciler republishes a task only while its record
    #: lives (RESULT_EXPIRES), it may be held for its countdown, then come back unacked.
    #: Longer covers a message left in a queue that no worker consumes (default 7 days).
    revoke_ttl: int = Field(7 * 86_400, ge=60)
    #: Hard and soft time limits for every task (seconds).
    task_time_limit: int = Field(240, ge=1)
    task_soft_time_limit: int = Field(225, ge=1)
    #: Seconds before Redis redelivers a message that a worker took but never acknowledged.
    #: It bounds how long the tasks of a SIGKILLed worker wait before they run again.
    visibility_timeout: int = Field(600, ge=10)
    #: Seconds between the workers' sweeps for messages past the visibility timeout.
    restore_interval: int = Field(10, ge=1, le=300)
    #: Seconds of soft shutdown after a cold shutdown starts (Celery 5.5+; 0 disables).
    worker_soft_shutdown_timeout: float = Field(30.0, ge=0)
    worker_prefetch_multiplier: int = Field(1, ge=1)
    #: The worker's pool and its size (`python -m conveyor_worker` passes them to Celery).
    worker_pool: Literal["prefork", "threads", "gevent", "solo"] = "prefork"
    worker_concurrency: int = Field(2, ge=1, le=10_000)
    #: The worker's node name before "@<container host name>" (Flower, `make inspect`).
    worker_name: str = Field("worker", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Comma-separated queues the worker consumes.
    worker_queues: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$")
    #: Where a worker writes, as JSON, the messages it could not put back at shutdown
    #: (a volume shared by the replicas), and reads them back at its next start.
    worker_rescue_dir: Path = Path("/var/lib/conveyor/worker-rescue")
    #: Task events (received, started, succeeded...) for Flower; off only to measure them.
    worker_send_task_events: bool = True
    #: Publish a task-sent event per submission (Flower then lists tasks still waiting).
    #: Off: Flower learns of a task when a worker receives it; one event less per task.
    task_send_sent_event: bool = False
    #: Seconds a worker buffers task events before publishing them together (0: at once).
    worker_event_flush_interval: float = Field(0.1, ge=0, le=5)
    #: Log a line per task received and per task finished (INFO). Off: Flower's events
    #: and the API show every task, and two log lines per task cost throughput.
    worker_log_tasks: bool = False
    #: Longest countdown or farthest ETA accepted (seconds). A waiting ETA task sits
    #: unacknowledged in a worker, so it must come due and finish before the visibility
    #: timeout.
    max_countdown: int = Field(300, ge=0)
    #: Recycle a worker's child process after this many tasks (0: never).
    worker_max_tasks_per_child: int = Field(10_000, ge=0)
    #: Recycle a child process once its resident memory passes this many KiB (0: never).
    worker_max_memory_per_child: int = Field(262_144, ge=0)
    #: Task packages to load besides the installed ones (the `conveyor.tasks` entry
    #: points): comma-separated module names, e.g. `billing_tasks,reports.tasks`.
    task_packages: str = Field("", pattern=r"^([A-Za-z_][\w.]*(,[A-Za-z_][\w.]*)*)?$")
    #: The built-in arithmetic and demo tasks (add, mul, xsum, noop, sleep, fail,
    #: progress): on by default, off for a stack that serves only its own tasks.
    demo_tasks: bool = True
    #: Register the test tasks `crash` and `tally` (the integration and chaos stacks set
    #: it). Never on in a deployment: `crash` kills the worker that runs it.
    test_tasks: bool = Field(False, validation_alias="CONVEYOR_TEST_TASKS")
    #: Redis URL where the `tally` task counts executions (default: the result database).
    tally_redis_url: str | None = None
    #: Deliveries of one task id (each ending with its worker process dead) before it is
    #: quarantined in the dead-letter store instead of crashing workers forever.
    max_deliveries: int = Field(5, ge=1, le=100)

    _log_level_upper = field_validator("log_level", mode="before")(upper_log_level)

    @property
    def task_modules(self) -> tuple[str, ...]:
        """TASK_PACKAGES as module names."""
        return tuple(name for name in self.task_packages.split(",") if name)

    @field_validator("redis_password")
    @classmethod
    def _redis_password_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "REDIS_PASSWORD", info.data.get("environment", "production"))

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        # A task still running when the visibility timeout expires is delivered again
        # to another worker: the limit must end it first.
        if problems := self.delivery_problems():
            raise ValueError("; ".join(problems))
        if self.redis_tls and not self.redis_tls_ca_file.is_file():
            raise ValueError(
                f"REDIS_TLS is on but REDIS_TLS_CA_FILE ({self.redis_tls_ca_file}) is not a "
                "file: mount the CA certificate made by `make certs`"
            )
        return self

    def delivery_problems(self) -> list[str]:
        """Limits that would make a task run twice, or a revoked one run, or be killed early."""
        problems = []
        if self.task_soft_time_limit > self.task_time_limit:
            problems.append(
                f"TASK_SOFT_TIME_LIMIT ({self.task_soft_time_limit}) must not exceed "
                f"TASK_TIME_LIMIT ({self.task_time_limit})"
            )
        if self.task_time_limit >= self.visibility_timeout:
            problems.append(
                f"TASK_TIME_LIMIT ({self.task_time_limit} s) must be shorter than "
                f"VISIBILITY_TIMEOUT ({self.visibility_timeout} s): a task still running when "
                "the visibility timeout passes is delivered again and runs twice"
            )
        elif self.max_countdown + self.task_time_limit >= self.visibility_timeout:
            problems.append(
                f"MAX_COUNTDOWN + TASK_TIME_LIMIT ({self.max_countdown} + {self.task_time_limit}"
                f" s) must be shorter than VISIBILITY_TIMEOUT ({self.visibility_timeout} s): "
                "a delayed task waits unacknowledged in a worker, then runs"
            )
        minimum = self.result_expires + self.max_countdown + self.visibility_timeout
        if self.revoke_ttl < minimum:
            problems.append(
                f"REVOKE_TTL ({self.revoke_ttl} s) must be at least RESULT_EXPIRES + "
                f"MAX_COUNTDOWN + VISIBILITY_TIMEOUT ({minimum} s): a revoke forgotten "
                "sooner lets a copy of the task run"
            )
        return problems

    def redis_url(self, db: int, *, tls_query: bool = True) -> str:
        """The Redis URL of one database, credentials quoted for a URL.

        With TLS, the query carries the certificate check for redis-py's `from_url`;
        Celery takes it from `redis_ssl_options` instead (tls_query=False).
        """
        scheme = "rediss" if self.redis_tls else "redis"
        user = quote(self.redis_username, safe="")
        password = quote(self.redis_password.get_secret_value(), safe="")
        url = f"{scheme}://{user}:{password}@{self.redis_host}:{self.redis_port}/{db}"
        if self.redis_tls and tls_query:
            url += "?" + urlencode(
                {"ssl_cert_reqs": "required", "ssl_ca_certs": str(self.redis_tls_ca_file)}
            )
        return url

    def redis_ssl_options(self) -> dict[str, Any] | None:
        """TLS options of Celery's broker and result backend (None without TLS)."""
        if not self.redis_tls:
            return None
        return {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": str(self.redis_tls_ca_file),
            "ssl_check_hostname": True,
        }

    @property
    def restores_unacked(self) -> bool:
        """Whether this process puts back messages whose worker died (kombu's sweep).

        Only workers do: any kombu consumer sweeps by default, the producer and Flower
        too (their remote-control replies), and with one Redis user per role they may
        not write kombu's unacknowledged set. Workers sweep every RESTORE_INTERVAL.
        """
        return self.conveyor_role in {"", "worker"}

    @property
    def broker_max_connections(self) -> int:
        """Size of the worker's broker connection pool.

        With acks late, threads and greenlets acknowledge in the task's own thread, each
        on a pool connection: kombu's default of 10 fails acks ("Too many connections")
        as soon as more than 10 tasks end at once. Prefork acknowledges in the main process.
        """
        if self.worker_pool in {"threads", "gevent"}:
            return self.worker_concurrency + 10
        return 10

    @property
    def broker_url(self) -> str:
        """Where task messages are sent and received (a redis-py URL)."""
        return self.redis_url(self.redis_broker_db)

    @property
    def result_backend_url(self) -> str:
        """Where task states and results are stored (a redis-py URL)."""
        return self.redis_url(self.redis_result_db)


class SubmitterSettings(Settings):
    """What submitting tasks needs: the producer's, and an in-process submitter's.

    Another Python service with Redis access submits through the producer's own path
    (`conveyor_producer.direct.DirectSubmitter`) with these, and no API key.
    """

    #: Most tasks in one batch request.
    max_batch_tasks: int = Field(10_000, ge=1, le=100_000)
    #: Submissions kept in the "recent" list.
    recent_max: int = Field(1_000, ge=1, le=100_000)


class ProducerSettings(SubmitterSettings):
    """Settings of the producer (HTTP API)."""

    conveyor_api_key: SecretStr
    #: Gunicorn worker processes (about one per core).
    producer_workers: int = Field(2, ge=1, le=64)
    #: Longest chain, group or chord the API accepts, in steps.
    max_workflow_steps: int = Field(1_000, ge=1, le=10_000)
    #: Largest request body in bytes.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: Deepest JSON nesting accepted in a request body.
    max_json_depth: int = Field(32, ge=4, le=500)
    #: Seconds an idempotency key keeps pointing at its first submission.
    idempotency_ttl: int = Field(86_400, ge=1)
    #: Longest long-poll of GET /api/v1/tasks/{id}/result (seconds).
    result_wait_max: float = Field(60, gt=0, le=300)
    #: Port inside the container where /metrics is served; not published by compose.
    metrics_port: int = Field(9100, ge=1, le=65535)
    #: Serve /metrics on the API port too (only when a proxy or firewall guards it).
    metrics_public: bool = False
    #: Proxies trusted to say who the client is (X-Forwarded-For, X-Forwarded-Proto):
    #: comma-separated IP addresses or networks, "*" for anyone. Empty: no one; the
    #: connecting address is the client, whatever headers it sends.
    forwarded_allow_ips: str = ""

    @field_validator("conveyor_api_key")
    @classmethod
    def _api_key_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "CONVEYOR_API_KEY", info.data.get("environment", "production"))

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        # As gunicorn reads it; it would refuse a bad entry only once the service starts.
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry)
                except ValueError as exc:
                    raise ValueError(f"FORWARDED_ALLOW_IPS: {exc}") from None
        return ",".join(entries)


class ReconcilerSettings(Settings):
    """Settings of the reconciler, which publishes again tasks that vanished."""

    #: Seconds between passes.
    reconcile_interval: float = Field(15.0, ge=1, le=60)
    #: Seconds a submission may be unaccounted for before it is looked for; two passes
    #: in a row must miss it before it is published again.
    reconcile_grace: float = Field(30.0, ge=5)


class WorkerSettings(Settings):
    """Settings of the workers: the shared ones plus how e-mail goes out (SMTP_*, EMAIL_*).

    Only the e-mail worker sends mail, but every worker reads these so that a worker
    told to consume the `email` queue is never half-configured.
    """

    #: Queues this worker consumes, comma-separated (the entrypoint passes them to Celery).
    worker_queues: str = "default"
    smtp_host: str = DEVELOPMENT_MAILBOX
    smtp_port: int = Field(1025, ge=1, le=65535)
    #: "tls": implicit TLS from the first byte (port 465); "starttls": upgrade after
    #: EHLO (port 587); "none": plain (the development mailbox only).
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    #: Seconds for each network step of an SMTP conversation (connect, each command).
    smtp_timeout: float = Field(10.0, gt=0, le=120)
    #: The From header and envelope sender of every e-mail.
    email_from: str = "Conveyor <conveyor@example.com>"
    #: Domain of the Message-IDs (default: the domain of EMAIL_FROM).
    email_message_id_domain: str | None = None
    #: Retries of an e-mail after a temporary failure (4xx, timeout, refused connection).
    email_max_retries: int = Field(8, ge=0, le=50)
    #: First retry delay in seconds; doubled each retry (with jitter) up to the maximum
    #: (itself capped at MAX_COUNTDOWN).
    email_retry_backoff: float = Field(5.0, gt=0)
    email_retry_backoff_max: float = Field(120.0, gt=0)
    #: Seconds a worker holds an e-mail's send lease; a copy of the task delivered
    #: meanwhile waits. Must outlast the slowest SMTP conversation; a SIGKILLed worker's
    #: e-mails wait for it (and VISIBILITY_TIMEOUT) before they are sent again.
    email_send_lease: int = Field(60, ge=5)
    #: Seconds an e-mail's "sent" record (its idempotency key) is kept.
    email_sent_ttl: int = Field(7 * 86_400, ge=60)
    #: Celery rate limit of send_email per worker, e.g. "50/s" or "1000/m"; empty: none.
    email_rate_limit: str = Field("", pattern=r"^(\d+(\.\d+)?/[smh])?$")

    @field_validator("email_from")
    @classmethod
    def _sender_is_an_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValueError(f"EMAIL_FROM {value!r} holds no valid address: {exc}") from None
        return value

    @model_validator(mode="after")
    def _email_settings_fit(self) -> WorkerSettings:
        if problems := self.email_problems():
            raise ValueError("; ".join(problems))
        return self

    @property
    def sends_email(self) -> bool:
        """Whether this worker consumes the e-mail queue."""
        return EMAIL_QUEUE in {queue.strip() for queue in self.worker_queues.split(",")}

    def email_problems(self) -> list[str]:
        """E-mail settings that would send a password in clear, or production mail nowhere."""
        problems = []
        if (
            self.sends_email
            and self.environment == "production"
            and self.smtp_host == DEVELOPMENT_MAILBOX
        ):
            problems.append(
                f"SMTP_HOST is {DEVELOPMENT_MAILBOX}, the development mailbox that keeps every "
                "e-mail and delivers none, and CONVEYOR_ENV is production: set SMTP_HOST to "
                "your SMTP server (with SMTP_PORT, SMTP_SECURITY, SMTP_USER, SMTP_PASSWORD), "
                "or CONVEYOR_ENV=development to keep e-mail in the mailbox"
            )
        if self.smtp_user and self.smtp_security == "none" and self.environment != "development":
            problems.append(
                "SMTP_USER is set but SMTP_SECURITY is none: the password would cross the "
                "network in clear; use starttls or tls"
            )
        return problems

    @property
    def retry_backoff_cap(self) -> float:
        """The longest retry delay.

        A retry waits unacknowledged in a worker, so it is also held to MAX_COUNTDOWN
        (see Settings.delivery_problems).
        """
        return min(self.email_retry_backoff_max, self.max_countdown)

    @property
    def message_id_domain(self) -> str:
        """The right-hand side of our Message-IDs."""
        if self.email_message_id_domain:
            return self.email_message_id_domain
        return parseaddr(self.email_from)[1].rpartition("@")[2] or "conveyor.invalid"


class TemplateSettings(BaseSettings):
    """Where the e-mail templates are (read by the producer to validate, the worker to render).

    Separate from `Settings` because validating a request needs no Redis credentials.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    #: A folder with one sub-folder per template (subject.txt, body.txt, body.html);
    #: default: the templates shipped with the worker.
    email_templates_dir: Path | None = None

    @field_validator("email_templates_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        # Compose passes unset variables as empty strings.
        return None if value == "" else value


class FlowerSettings(Settings):
    """Settings of the Flower dashboard."""

    flower_user: str = Field("admin", min_length=1, pattern=r"^[^:\s]+$")
    flower_password: SecretStr
    #: Seconds after which Flower forgets a worker that went offline (scaled down).
    flower_purge_offline_workers: int = Field(300, ge=0)
    #: Viewers only: Flower refuses every operation (revoke, pool changes, shutdown).
    flower_read_only: bool = False
    #: Signs Flower's cookies; generated by `make env`. Empty: a new one at each start.
    flower_cookie_secret: SecretStr = SecretStr("")

    @field_validator("flower_password")
    @classmethod
    def _password_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "FLOWER_PASSWORD", info.data.get("environment", "production"))


class MailboxSettings(BaseSettings):
    """Settings of the development mailbox (MAILBOX_*): an SMTP sink with a web inbox.

    Separate from `Settings`: the mailbox never talks to Redis.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, secrets_dir=secrets_dir())

    mailbox_smtp_port: int = Field(1025, ge=1, le=65535)
    mailbox_http_port: int = Field(8025, ge=1, le=65535)
    mailbox_max_messages: int = Field(5000, ge=1)
    mailbox_max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    #: Folder where messages are kept (a volume in compose); empty: memory only.
    mailbox_data_dir: Path | None = None
    #: Keep one copy per Message-ID, as receiving mail systems do.
    mailbox_drop_duplicates: bool = True
    #: Basic auth of every page and API path (all but /healthz).
    mailbox_user: str = Field("admin", min_length=1, pattern=r"^[^:\s]+$")
    mailbox_password: SecretStr
    #: Serve the fault switch (/api/faults: refuse or slow down mail on purpose). Only
    #: test stacks turn it on (the chaos overlay); `make audit` refuses it in compose.
    mailbox_faults: bool = False
    #: Level of the mailbox's log and uvicorn's (LOG_LEVEL, as for every role).
    log_level: LogLevel = LOG_LEVEL_DEFAULT

    _log_level_upper = field_validator("log_level", mode="before")(upper_log_level)

    @field_validator("mailbox_data_dir", mode="before")
    @classmethod
    def _empty_is_memory(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("mailbox_password")
    @classmethod
    def _password_is_real(cls, value: SecretStr) -> SecretStr:
        # Checked in every environment: the mailbox runs only in development, and it
        # shows every e-mail the stack sends.
        return check_secret(value, "MAILBOX_PASSWORD", "production")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()


@lru_cache(maxsize=1)
def get_worker_settings() -> WorkerSettings:
    """The worker settings of this process, read once from the environment."""
    return WorkerSettings()
