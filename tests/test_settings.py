"""The settings' one definition: nested groups, the venue groups, their environment names and flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import core.settings as settings_module
from core.settings import Settings, VenueSettings, load, register_venue
from ingest.venues import REGISTRY  # registers the venue groups


def test_environment_names_are_group_and_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAFKA_LIVE_BARS_TOPIC", "bars.x")
    monkeypatch.setenv("LIVE_BARS_REWIND_S", "7")
    monkeypatch.setenv("INGEST_SYMBOL_MAP", '{"BTC-USD": "XBTUSD"}')
    monkeypatch.setenv("COINBASE_FEED", "market_trades")
    (tmp_path / ".env").write_text("STREAM_WATERMARK=3 seconds\nCHECKPOINT_PATH=cp\n")
    settings = Settings()
    assert settings.kafka.live_bars_topic == "bars.x"
    assert settings.live_bars.rewind_s == 7.0
    assert settings.ingest.symbol_map == {"BTC-USD": "XBTUSD"}
    assert settings.venue("coinbase").feed == "market_trades"
    assert settings.stream.watermark == "3 seconds"
    assert settings.checkpoint.path == "cp"


def test_every_setting_has_one_flat_name_that_round_trips() -> None:
    names = Settings.flat_names()
    assert len(names) == len(set(names.values()))
    assert names["kafka_topic"] == ("kafka", "topic")
    overridden = load(kafka_topic="t", ingest_backfill=True, stream_volatility_windows_s=(300, 60))
    assert overridden.kafka.topic == "t" and overridden.ingest.backfill
    assert overridden.stream.volatility_windows_s == (60, 300)  # validated as from the environment
    assert Settings.default("kafka_partitions") == 4


def test_flags_are_validated_and_unknown_names_refused() -> None:
    with pytest.raises(TypeError, match="unknown settings backfil"):
        load(backfil=True)
    with pytest.raises(ValidationError):
        load(stream_watermark="soon")


def test_every_venue_has_its_group_from_the_registry() -> None:
    for name, spec in REGISTRY.items():
        assert isinstance(load().venue(name), spec.settings)
        assert f"{name}_ws_url" in Settings.flat_names()
    assert load().venue("okx").ws_url == "wss://ws.okx.com:8443/ws/v5/public"  # the venue module's default


def test_a_new_venue_group_needs_no_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class KrakenSettings(VenueSettings):
        ws_url: str = "wss://ws.kraken.example"
        depth: int = 10

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(settings_module._VENUE_GROUPS, "kraken", KrakenSettings)
    assert Settings.default("kraken_depth") == 10
    monkeypatch.setenv("KRAKEN_DEPTH", "25")
    (tmp_path / ".env").write_text("KRAKEN_WS_URL=ws://127.0.0.1:1\n")
    group = load().venue("kraken")
    assert (group.ws_url, group.model_dump()["depth"]) == ("ws://127.0.0.1:1", 25)
    overridden = load(kraken_depth=3, kafka_topic="t")
    assert overridden.venue("kraken").model_dump()["depth"] == 3 and overridden.kafka.topic == "t"
    assert load().venue("kraken").model_dump()["depth"] == 25  # the override stays with its copy
    with pytest.raises(ValidationError):
        load(kraken_depth="deep")
    with pytest.raises(ValueError, match="has the name of the 'kafka' settings group"):
        register_venue("kafka", KrakenSettings)
    with pytest.raises(ValueError, match="no settings group for venue 'nowhere'"):
        load().venue("nowhere")
