"""The project's one settings object.

Defaults here; environment variables and a `.env` file override them (same
names, upper case: `KAFKA_BOOTSTRAP_SERVERS`, `LAKE_PATH`, ...); each command's
flags override those through `Settings.with_overrides`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lake.schema import DEFAULT_VOLATILITY_WINDOWS_S

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic: str = "crypto.trades"
    kafka_dlq_topic: str = "crypto.trades.dlq"
    kafka_feed_events_topic: str = "crypto.feed_events"
    kafka_live_bars_topic: str = "crypto.bars.live"  # forming 1-second bars (jobs/live_bars.py)
    kafka_live_bars_retention_ms: int = Field(default=3600 * 1000, ge=60_000)  # live bars are ephemeral
    kafka_partitions: int = Field(default=4, ge=1)
    kafka_retention_ms: int = Field(default=24 * 3600 * 1000, ge=60_000)
    kafka_bootstrap_timeout_ms: int = Field(default=30_000, ge=100)  # producer: give up reaching the broker

    # Lake and Spark checkpoints: local paths or any Hadoop URI (s3a://...)
    lake_path: str = "lake"
    checkpoint_path: str = "checkpoints"

    # Stream job
    stream_watermark: str = "5 seconds"
    stream_trigger: str = "0 seconds"  # the next micro-batch as soon as one ends; or "available-now"
    stream_starting_offsets: str = "earliest"
    stream_max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    # Trailing windows for lake/volatility, in seconds (JSON list in env: [60,300]).
    stream_volatility_windows_s: tuple[int, ...] = DEFAULT_VOLATILITY_WINDOWS_S

    # Live bars (jobs/live_bars.py): at most one update per window per interval; on start, read
    # back this far so the windows still forming are rebuilt from all their trades.
    live_bars_emit_interval_ms: int = Field(default=50, ge=0)
    live_bars_rewind_s: float = Field(default=30.0, ge=0)

    # Lake maintenance (`python -m lake maintain`): keep partitions this long (e.g. "30d"; empty:
    # keep everything), delete replaced files once no reader can hold them (grace), and how
    # often `make live` runs it.
    lake_retention: str = ""
    lake_maintain_every: str = "30s"
    lake_grace: str = "1h"

    # `make live` (infra/live.py): its run folder (logs, lock, supervisor files) and the dashboard's port
    live_home: str = ".live"
    dashboard_port: int = Field(default=8501, ge=1, le=65535)

    # Local broker started by `make kafka-up` and the tests
    kafka_home: str = ".kafka"

    # Live feeds (`python -m ingest live`). Empty URL = the venue's public endpoint.
    binance_ws_url: str = "wss://stream.binance.com:9443/stream"
    binance_rest_url: str = "https://api.binance.com"
    coinbase_feed: Literal["matches", "market_trades"] = "matches"
    coinbase_ws_url: str = ""  # default: the Exchange feed, or Advanced Trade for market_trades
    coinbase_rest_url: str = "https://api.exchange.coinbase.com"
    # Exchange symbol -> canonical symbol, e.g. {"BTC-USD": "BTCUSD"} (JSON in env).
    symbol_map: dict[str, str] = Field(default_factory=dict)
    ws_silence_timeout_s: float = Field(default=30.0, gt=0)  # watchdog: reconnect after this much silence
    ws_subscribe_timeout_s: float = Field(default=10.0, gt=0)
    ws_backoff_initial_s: float = Field(default=0.5, gt=0)
    ws_backoff_max_s: float = Field(default=60.0, gt=0)
    ws_max_connection_age_s: float = Field(default=23.5 * 3600, gt=0)  # Binance closes at 24 h
    ws_max_retries: int | None = Field(default=None, ge=0)  # None = retry forever
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    health_interval_s: float = Field(default=10.0, gt=0)
    status_interval_s: float = Field(default=10.0, gt=0)
    backfill: bool = False  # fetch a detected trade-id gap over REST
    dedup_max_open_gaps: int = Field(default=1000, ge=1)  # per symbol; bounds the dedup memory

    # Raw recordings (`python -m ingest record`)
    record_path: str = "recordings"
    record_rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    record_rotate_s: float = Field(default=3600.0, gt=0)

    @field_validator("stream_volatility_windows_s")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError(f"expected distinct positive window lengths in seconds, got {value!r}")
        return tuple(sorted(value))

    @field_validator("lake_retention", "lake_maintain_every", "lake_grace")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            duration(value)
        return value

    @field_validator("stream_watermark", "stream_trigger")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value == "available-now":
            return value
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].startswith(("second", "minute", "milli")):
            raise ValueError(f"expected e.g. '5 seconds' or 'available-now', got {value!r}")
        return value

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; None means 'not given'."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return type(self).model_validate({**self.model_dump(), **given})

    @property
    def coinbase_url(self) -> str:
        if self.coinbase_ws_url:
            return self.coinbase_ws_url
        if self.coinbase_feed == "market_trades":
            return "wss://advanced-trade-ws.coinbase.com"
        return "wss://ws-feed.exchange.coinbase.com"

    @property
    def bootstrap_host_port(self) -> tuple[str, int]:
        first = self.kafka_bootstrap_servers.split(",")[0]
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port)


_UNITS_MS = {"milli": 1, "second": 1000, "minute": 60_000}
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> dt.timedelta:
    """'30d', '12h', '90m', '45s' (or bare seconds, '60') -> a timedelta."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a duration like 30d, 12h, 90m or 45s, got {text!r}")
    return dt.timedelta(seconds=int(match[1]) * _SECONDS[match[2] or "s"])


def interval_ms(text: str) -> int:
    """'5 seconds' -> 5000; the form Spark takes for watermarks and triggers."""
    amount, unit = text.split()
    for prefix, factor in _UNITS_MS.items():
        if unit.startswith(prefix):
            return int(amount) * factor
    raise ValueError(f"unknown interval unit in {text!r}")


def load(**overrides: Any) -> Settings:
    return Settings().with_overrides(**overrides)
