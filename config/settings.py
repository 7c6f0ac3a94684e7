"""Every knob a deployer may turn, read from `CONVEYOR_*` environment variables or `.env`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/conveyor.db"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# How long past its deadline an attempt may still be running: the slack the lease keeps.
LEASE_MARGIN_S = 1.0


class Settings(BaseSettings):
    """Conveyor's configuration; each field is `CONVEYOR_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Environment: `production` refuses placeholder secrets and SQLite (config/production.py)
    env: Literal["development", "production"] = "development"

    # Storage and broker
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # Every database round trip is bounded (store/db.py): connect, statement, lock, pool wait.
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_statement_timeout_ms: int = Field(default=3000, ge=100)
    db_lock_timeout_ms: int = Field(default=2000, ge=100)
    # A process paused or stuck inside a transaction (SIGSTOP, a VM pause) holds its row locks;
    # PostgreSQL ends its session after this long idle in the transaction, freeing them.
    db_idle_in_transaction_timeout_ms: int = Field(default=5000, ge=100)
    db_pool_timeout_s: float = Field(default=2.0, gt=0)
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    worker_sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "NORMAL"
    broker_url: str = DEFAULT_BROKER_URL
    broker_key_prefix: str = ""
    broker_timeout_s: float = Field(default=1.0, gt=0)
    visibility_timeout_s: int = Field(default=3600, ge=10)
    # Off by default: Flower switches a worker's events on when it connects (enable_events).
    worker_task_events: bool = False

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    page_size_max: int = Field(default=200, ge=1)
    # Per API key, shared by every API instance through Redis (GCRA); 0 switches it off.
    api_rate_limit_per_s: float = Field(default=1000.0, ge=0)
    api_rate_burst: int = Field(default=2000, ge=1)
    # Failed authentications (401) per client address, shared by every instance; 0 = off.
    api_auth_failures_per_s: float = Field(default=1.0, ge=0)
    api_auth_failure_burst: int = Field(default=30, ge=1)
    # Long polls (`?wait=`) one key may hold open at once on one API instance.
    api_waits_per_key: int = Field(default=32, ge=1)
    # Non-terminal jobs a tenant may have at once; 0 switches the quota off.
    api_open_jobs_per_tenant: int = Field(default=1_000_000, ge=0)

    # Workers
    # Provider calls are network-bound: threads keep many in flight (the DB pool, 10 + 10
    # overflow, and the HTTP pool, at least 32, cover them).
    worker_concurrency: int = Field(default=16, ge=1)
    worker_pool: str = "threads"
    lease_s: int = Field(default=60, ge=1)
    attempt_deadline_s: float = Field(default=30.0, gt=0)
    max_deliveries: int = Field(default=3, ge=1)
    republish_after_s: float = Field(default=300.0, gt=0)
    task_time_limit_s: float | None = Field(default=None, gt=0)
    extra_job_types: str = ""
    # Only for the negative-control test that proves the delivery tests can see loss.
    unsafe_early_ack: bool = False
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)
    due_poll_s: float = Field(default=1.0, gt=0)
    sweep_interval_s: float = Field(default=10.0, gt=0)

    # Schedules and beat
    beat_lease_s: float = Field(default=10.0, gt=0)
    beat_tick_s: float = Field(default=0.5, gt=0)
    schedule_misfire_grace_s: float = Field(default=30.0, ge=0)
    purge_retention_s: float = Field(default=30 * 86400.0, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)
    purge_batch: int = Field(default=500, ge=1)

    # Retries, breaker and rate limits
    retry_max_age_s: float = Field(default=86400.0, gt=0)
    retry_max_attempts_cap: int = Field(default=25, ge=1)
    retry_max_age_cap_s: float = Field(default=7 * 86400.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)
    rate_limits: str = ""
    tenant_rate_limits: str = ""
    rate_limit_guard_s: float = Field(default=0.05, ge=0)
    guard_redis_url: str = ""

    # Integrations
    http_connect_timeout_s: float = Field(default=3.05, gt=0)
    http_read_timeout_s: float = Field(default=10.0, gt=0)
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8100
    sandbox_url: str = Field(default="", description="defaults to http://SANDBOX_HOST:SANDBOX_PORT")
    sandbox_api_key: SecretStr = SecretStr("sk_sandbox_local")

    # Payment providers (defaults point at the bundled sandbox PSP)
    stripe_base_url: str = Field(default="", description="defaults to SANDBOX_URL")
    stripe_api_key: SecretStr = SecretStr("sk_test_sandbox")
    stripe_version: str = "2024-06-20"
    stripe_webhook_secret: SecretStr = SecretStr("whsec_sandbox")
    adyen_base_url: str = Field(default="", description="defaults to SANDBOX_URL/adyen")
    adyen_api_key: SecretStr = SecretStr("adyen_sandbox_key")
    adyen_merchant_account: str = "ConveyorSandbox"
    adyen_hmac_key: SecretStr = SecretStr(
        "44782def547aaa06c910c43932b1eb0c71fc68d9d0c057550c48ec2acf6ba056"
    )
    payment_key_margin_s: float = Field(default=3600.0, ge=0)
    # A job the provider answered pending (`processing`, `received`) is looked up this often
    # until it settles, and sent to review when it has not settled within the maximum.
    provider_poll_s: float = Field(default=60.0, gt=0)
    awaiting_provider_max_s: float = Field(default=172800.0, gt=0)
    reconcile_interval_s: float = Field(default=900.0, gt=0)

    # Outbound webhooks (README "Webhooks")
    webhook_secret_key: SecretStr = SecretStr("")
    webhook_connect_timeout_s: float = Field(default=3.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_response_cap_bytes: int = Field(default=4096, ge=256)
    webhook_endpoint_concurrency: int = Field(default=4, ge=1)
    webhook_retry_max_age_s: float = Field(default=3 * 86400.0, gt=0)
    webhook_backoff_base_s: float = Field(default=30.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=6 * 3600.0, gt=0)
    webhook_auto_disable_after_s: float = Field(default=5 * 86400.0, gt=0)
    webhook_rotation_grace_s: float = Field(default=86400.0, ge=0)

    # Data providers
    fx_base_url: str = Field(default="", description="defaults to SANDBOX_URL/ecb")
    # Fernet key (32 url-safe base64 bytes) encrypting tenants' pull secrets at rest.
    data_secret_key: SecretStr = SecretStr("")
    # Outbound URLs a tenant names may reach loopback: development and tests only.
    outbound_allow_loopback: bool = False

    # Operations
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_user: str = ""
    flower_password: SecretStr = SecretStr("")
    log_level: str = "INFO"
    log_json: bool = True
    # Bearer token for the API's /metrics and the worker's metrics endpoint; empty = metrics off.
    metrics_token: SecretStr = SecretStr("")
    # The worker's metrics endpoint (one per worker process); port 0 = not served.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    # Each worker writes which queues it consumes, and when it last took a message, this often
    # (seconds); a record not refreshed for 3 intervals has expired: that consumer is gone.
    worker_heartbeat_s: float = Field(default=5.0, gt=0, le=300)
    # A queue whose oldest queued job waited this long while none of its live consumers took a
    # message for as long is `stalled` (not ready), not just busy.
    consumer_stall_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _derive_sandbox_url(self) -> Settings:
        if not self.sandbox_url:
            self.sandbox_url = f"http://{self.sandbox_host}:{self.sandbox_port}"
        if not self.stripe_base_url:
            self.stripe_base_url = self.sandbox_url
        if not self.adyen_base_url:
            self.adyen_base_url = f"{self.sandbox_url}/adyen"
        if not self.fx_base_url:
            self.fx_base_url = f"{self.sandbox_url}/ecb"
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
