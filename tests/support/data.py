"""Where the tests' inputs are."""

from __future__ import annotations

from pathlib import Path

from core.settings import REPO_ROOT

# tests/data: real captures (provenance in its SOURCES.md) and expected outputs
DATA = Path(__file__).parent.parent / "data"
SAMPLE = REPO_ROOT / "ingest" / "tapes" / "sample.ndjson.gz"  # the real sample tape (ingest/tapes/SOURCES.md)
