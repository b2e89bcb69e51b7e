"""The project's one settings object, one nested group per component.

Defaults here; environment variables and a `.env` file override them; each command's flags
override those through `Settings.with_overrides`. A setting's environment name is its group
and field joined by `_`, upper case, which is also its flat name for `with_overrides`:

    settings.kafka.topic        KAFKA_TOPIC          with_overrides(kafka_topic=...)
    settings.stream.watermark   STREAM_WATERMARK     with_overrides(stream_watermark=...)
    settings.ingest.symbol_map  INGEST_SYMBOL_MAP    with_overrides(ingest_symbol_map=...)

Each venue of `ingest.venues` has a group named after it (`BINANCE_WS_URL`, `OKX_REST_URL`),
declared in the venue's own module with its defaults (a `VenueSettings` subclass in its
`VenueSpec`); the venue registry registers it here (`register_venue`), so adding a venue
touches no settings file. `settings.venue(name)` reads the group, with any overrides.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.schema import DEFAULT_VOLATILITY_WINDOWS_S

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


class _Group(BaseModel):
    # extra="ignore": LIVE_BARS_REWIND_S is offered to the `live` group too (as `bars_rewind_s`).
    model_config = ConfigDict(frozen=True, extra="ignore")


class KafkaSettings(_Group):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "crypto.trades"
    dlq_topic: str = "crypto.trades.dlq"
    feed_events_topic: str = "crypto.feed_events"
    live_bars_topic: str = "crypto.bars.live"  # forming 1-second bars (jobs/forming_bars_service.py)
    live_bars_retention_ms: int = Field(default=3600 * 1000, ge=60_000)  # live bars are ephemeral
    partitions: int = Field(default=4, ge=1)
    retention_ms: int = Field(default=24 * 3600 * 1000, ge=60_000)
    bootstrap_timeout_ms: int = Field(default=30_000, ge=100)  # producer: give up reaching the broker
    home: str = ".kafka"  # the local broker started by `make kafka-up` and the tests

    @property
    def bootstrap_host_port(self) -> tuple[str, int]:
        first = self.bootstrap_servers.split(",")[0]
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port)


class LakeSettings(_Group):
    path: str = "data/lake"  # a local folder of Delta tables, one per table (`lake.delta`)
    # Maintenance (`python -m lake maintain`): keep partitions this long (e.g. "30d"; empty: keep
    # everything), delete replaced files once no reader can hold them (grace: also each table's
    # delta.deletedFileRetentionDuration), and how often `make live` runs it.
    retention: str = ""
    # lake/trades' own retention (ticks are ~100x the bars' bytes): empty keeps them as long as
    # `retention` keeps the other tables.
    trades_retention: str = ""
    maintain_every: str = "30s"
    grace: str = "1h"
    # The Delta log (README, "The lake is Delta Lake"): a checkpoint every N commits, and commits
    # older than log_retention deleted at each checkpoint (delta.logRetentionDuration). A 1 s
    # trigger makes ~3,600 commits an hour per table; opening a table lists its whole log.
    checkpoint_interval: int = Field(default=10, ge=2)
    log_retention: str = "1h"

    @field_validator("retention", "trades_retention", "maintain_every", "grace", "log_retention")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            duration(value)
        return value


class CheckpointSettings(_Group):
    path: str = "data/checkpoints"  # Spark checkpoints: a local path or any Hadoop URI


class StreamSettings(_Group):
    watermark: str = "5 seconds"
    trigger: str = "0 seconds"  # the next micro-batch as soon as one ends; or "available-now"
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    # Trailing windows for lake/volatility, in seconds (JSON list in env: [60,300]). The job
    # records them in the lake (`core.tables`), where readers take them from.
    volatility_windows_s: tuple[int, ...] = DEFAULT_VOLATILITY_WINDOWS_S

    @field_validator("volatility_windows_s")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError(f"expected distinct positive window lengths in seconds, got {value!r}")
        return tuple(sorted(value))

    @field_validator("watermark", "trigger")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value == "available-now":
            return value
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].startswith(("second", "minute", "milli")):
            raise ValueError(f"expected e.g. '5 seconds' or 'available-now', got {value!r}")
        return value


class LiveBarsSettings(_Group):
    # jobs/forming_bars_service.py: at most one update per window per interval; on start, read back this
    # far so the windows still forming are rebuilt from all their trades.
    emit_interval_ms: int = Field(default=50, ge=0)
    rewind_s: float = Field(default=30.0, ge=0)


class LiveSettings(_Group):
    home: str = ".live"  # `make live` (infra/live.py): logs, lock, supervisor files


class DashboardSettings(_Group):
    port: int = Field(default=8501, ge=1, le=65535)


class ApiSettings(_Group):
    """`python -m api` (`make api`): the read-only HTTP API."""

    host: str = "127.0.0.1"  # any other address needs API_KEY
    port: int = Field(default=8000, ge=1, le=65535)
    key: str | None = None  # required in header X-API-Key when set (and for a non-loopback host)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call it (JSON list in env); none: CORS off
    request_timeout_s: float = Field(default=10.0, gt=0)  # a request still running then gets 503
    max_rows: int = Field(default=100_000, ge=1)  # candles or rows in one response; more is a 413
    sql_max_rows: int = Field(default=10_000, ge=1)  # POST /v1/sql (lake.sandbox's cap)
    stale_after_s: float = Field(default=60.0, gt=0)  # /v1/health: a symbol's newest bar older than this is stale
    warm_days: int = Field(default=30, ge=0)  # 1-minute rollups made ahead for the newest days' partitions (0: off)
    # Updates a WebSocket client may leave unread: past it, a client that takes none for 2 s, or
    # leaves ten times as many, is dropped (api.stream).
    stream_queue: int = Field(default=1000, ge=1)


class MlflowSettings(_Group):
    """MLflow tracking and the model registry for `python -m models` (`models/tracking.py`).

    MLflow's own variable names: `MLFLOW_TRACKING_URI` points training at a real server; empty
    means the project's local store (`models/mlflow/`, a sqlite database and an artifact folder,
    git-ignored), which `make mlflow` serves on 127.0.0.1:`MLFLOW_UI_PORT`."""

    tracking_uri: str = ""
    ui_port: int = Field(default=5000, ge=1, le=65535)
    experiment: str = ""  # empty: one experiment per task, named after it (vol_spike, direction)
    timeout_s: float = Field(default=5.0, gt=0)  # a tracking server that does not answer in this is unreachable


class IngestSettings(_Group):
    """`python -m ingest live` and `record`, for every venue."""

    # Exchange symbol -> canonical symbol, e.g. {"BTC-USD": "BTCUSD"} (JSON in env).
    symbol_map: dict[str, str] = Field(default_factory=dict)
    backfill: bool = False  # fetch a detected trade-id gap over REST
    dedup_max_open_gaps: int = Field(default=1000, ge=1)  # per symbol; bounds the dedup memory
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    health_interval_s: float = Field(default=10.0, gt=0)
    status_interval_s: float = Field(default=10.0, gt=0)


class WsSettings(_Group):
    silence_timeout_s: float = Field(default=30.0, gt=0)  # watchdog: reconnect after this much silence
    subscribe_timeout_s: float = Field(default=10.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    max_connection_age_s: float = Field(default=23.5 * 3600, gt=0)  # Binance closes at 24 h
    max_retries: int | None = Field(default=None, ge=0)  # None = retry forever
    # A venue that wants client keepalives gets one after this long without a frame (OKX cuts at 30 s).
    keepalive_after_s: float = Field(default=20.0, gt=0)


class RecordSettings(_Group):
    path: str = "recordings"  # `python -m ingest record`
    rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    rotate_s: float = Field(default=3600.0, gt=0)


class VenueSettings(BaseSettings):
    """A venue's settings group, declared in its module; environment names `<VENUE>_<FIELD>`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    ws_url: str = ""
    rest_url: str = ""


# The venue groups, registered by the venue registry (ingest.venues) as it is built.
_VENUE_GROUPS: dict[str, type[VenueSettings]] = {}


def register_venue(name: str, group: type[VenueSettings]) -> None:
    """Make venue `name`'s settings group known: its environment names and flat names."""
    if name in Settings.model_fields:
        raise ValueError(f"venue {name!r} has the name of the {name!r} settings group")
    _VENUE_GROUPS[name] = group


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_nested_delimiter="_", env_nested_max_split=1
    )

    kafka: KafkaSettings = KafkaSettings()
    lake: LakeSettings = LakeSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    stream: StreamSettings = StreamSettings()
    live_bars: LiveBarsSettings = LiveBarsSettings()
    live: LiveSettings = LiveSettings()
    dashboard: DashboardSettings = DashboardSettings()
    api: ApiSettings = ApiSettings()
    mlflow: MlflowSettings = MlflowSettings()
    ingest: IngestSettings = IngestSettings()
    ws: WsSettings = WsSettings()
    record: RecordSettings = RecordSettings()
    # The venue groups' overrides (with_overrides); their environment is read by `venue()`.
    _venue_overrides: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @classmethod
    def _groups(cls) -> dict[str, type[BaseModel]]:
        groups: dict[str, type[BaseModel]] = {}
        for group, info in cls.model_fields.items():
            model = info.annotation
            assert isinstance(model, type) and issubclass(model, _Group)
            groups[group] = model
        return groups | dict(_VENUE_GROUPS)

    @classmethod
    def flat_names(cls) -> dict[str, tuple[str, str]]:
        """KAFKA_TOPIC's lower-case flat name -> ("kafka", "topic"), for every setting."""
        groups = cls._groups().items()
        return {f"{group}_{name}": (group, name) for group, model in groups for name in model.model_fields}

    @classmethod
    def default(cls, flat: str) -> Any:
        """The default of a setting by its flat name (`kafka_partitions`)."""
        group, name = cls.flat_names()[flat]
        return cls._groups()[group].model_fields[name].default

    def venue(self, name: str) -> VenueSettings:
        """Venue `name`'s settings group: its overrides, else its environment, else its defaults."""
        group = _VENUE_GROUPS.get(name)
        if group is None:
            raise ValueError(f"no settings group for venue {name!r}; known: {', '.join(_VENUE_GROUPS) or 'none'}")
        return group(_env_prefix=f"{name}_", **self._venue_overrides.get(name, {}))  # type: ignore[call-arg]

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given settings (flat names) replaced; None means 'not given'."""
        names = self.flat_names()
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"unknown settings {', '.join(unknown)}")
        data = self.model_dump()
        venues = {name: dict(values) for name, values in self._venue_overrides.items()}
        for flat, value in overrides.items():
            if value is not None:
                group, name = names[flat]
                (venues.setdefault(group, {}) if group in _VENUE_GROUPS else data[group])[name] = value
        copy = type(self).model_validate(data)
        copy._venue_overrides = venues
        for name in venues:
            copy.venue(name)  # validated now, as the other groups are
        return copy


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
