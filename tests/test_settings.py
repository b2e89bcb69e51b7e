"""The settings' one definition: nested groups, their environment names, flags and renamed names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, load


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
    assert settings.coinbase.feed == "market_trades"
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
