"""The one source of configuration: typed settings read from the environment.

Every variable is documented in `.env.example`. Secrets are refused when empty or
left at a placeholder value, unless `CONVEYOR_ENV=development`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that mean "somebody forgot to set this secret".
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "password", "secret", "admin", "redis", "xxx"}
)
MIN_SECRET_LENGTH = 16


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

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "production"] = Field(
        "production", validation_alias="CONVEYOR_ENV"
    )
    redis_host: str = "redis"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr
    redis_broker_db: int = Field(0, ge=0, le=15)
    redis_result_db: int = Field(1, ge=0, le=15)
    #: Seconds to wait for Redis to accept a connection or answer a command.
    redis_socket_timeout: float = Field(2.0, gt=0, le=60)

    #: How long results stay in Redis (seconds).
    result_expires: int = Field(86_400, ge=60)
    #: Hard and soft time limits for every task (seconds).
    task_time_limit: int = Field(300, ge=1)
    task_soft_time_limit: int = Field(270, ge=1)
    #: Seconds before Redis redelivers a message that a worker took but never acknowledged.
    visibility_timeout: int = Field(3_600, ge=60)
    #: Seconds of soft shutdown after a cold shutdown starts (Celery 5.5+; 0 disables).
    worker_soft_shutdown_timeout: float = Field(30.0, ge=0)
    worker_prefetch_multiplier: int = Field(1, ge=1)
    #: Longest countdown or farthest ETA accepted (seconds). A waiting ETA task sits
    #: unacknowledged in a worker, so it must come due before the visibility timeout.
    max_countdown: int = Field(3_000, ge=0)

    @field_validator("redis_password")
    @classmethod
    def _redis_password_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "REDIS_PASSWORD", info.data.get("environment", "production"))

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        # A task still running when the visibility timeout expires is delivered again
        # to another worker: the limit must end it first.
        if self.task_soft_time_limit > self.task_time_limit:
            raise ValueError("TASK_SOFT_TIME_LIMIT must not exceed TASK_TIME_LIMIT")
        if self.task_time_limit >= self.visibility_timeout:
            raise ValueError("TASK_TIME_LIMIT must be shorter than VISIBILITY_TIMEOUT")
        if self.max_countdown >= self.visibility_timeout:
            raise ValueError("MAX_COUNTDOWN must be shorter than VISIBILITY_TIMEOUT")
        return self

    def redis_url(self, db: int) -> str:
        """The Redis URL for one database, with the password quoted for a URL."""
        password = quote(self.redis_password.get_secret_value(), safe="")
        return f"redis://:{password}@{self.redis_host}:{self.redis_port}/{db}"

    @property
    def broker_url(self) -> str:
        """Where Celery sends and receives task messages."""
        return self.redis_url(self.redis_broker_db)

    @property
    def result_backend_url(self) -> str:
        """Where Celery stores task states and results."""
        return self.redis_url(self.redis_result_db)


class ProducerSettings(Settings):
    """Settings of the producer (HTTP API)."""

    conveyor_api_key: SecretStr
    #: Longest chain, group or chord the API accepts, in steps.
    max_workflow_steps: int = Field(1_000, ge=1, le=10_000)
    #: Most tasks in one batch request.
    max_batch_tasks: int = Field(10_000, ge=1, le=100_000)
    #: Largest request body in bytes.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: Deepest JSON nesting accepted in a request body.
    max_json_depth: int = Field(32, ge=4, le=500)
    #: Seconds an idempotency key keeps pointing at its first submission.
    idempotency_ttl: int = Field(86_400, ge=1)
    #: Submissions kept in the "recent" list.
    recent_max: int = Field(1_000, ge=1, le=100_000)
    #: Longest long-poll of GET /api/v1/tasks/{id}/result (seconds).
    result_wait_max: float = Field(60, gt=0, le=300)
    #: Port inside the container where /metrics is served; not published by compose.
    metrics_port: int = Field(9100, ge=1, le=65535)
    #: Serve /metrics on the API port too (only when a proxy or firewall guards it).
    metrics_public: bool = False

    @field_validator("conveyor_api_key")
    @classmethod
    def _api_key_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "CONVEYOR_API_KEY", info.data.get("environment", "production"))


class FlowerSettings(Settings):
    """Settings of the Flower dashboard."""

    flower_user: str = Field("admin", min_length=1, pattern=r"^[^:\s]+$")
    flower_password: SecretStr
    #: Seconds after which Flower forgets a worker that went offline (scaled down).
    flower_purge_offline_workers: int = Field(300, ge=0)

    @field_validator("flower_password")
    @classmethod
    def _password_is_real(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        return check_secret(value, "FLOWER_PASSWORD", info.data.get("environment", "production"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
