"""The compacted 30-day, 10-symbol lake for `bench/api.py`: `bench/lake_query.py`'s cached lake,
copied once, made a Delta table and maintained as `python -m lake maintain` leaves it an hour later
(OPTIMIZE, a checkpoint, the OPTIMIZE's tombstones expired: `bench/lake_query.py`'s `compact_copy`
without its timing), and kept in `bench/.cache/lake-30d-compacted` while the source cache is unchanged."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))  # after the project: bench/api.py is not `api`

import lake_query
from lake_in_day import expire_before_now

from core.settings import REPO_ROOT
from lake.delta import COMPACTED_ROW_GROUP_ROWS
from lake.maintenance import compact, tidy_log

SOURCE = REPO_ROOT / "bench" / ".cache" / "lake-30d"
COMPACTED = REPO_ROOT / "bench" / ".cache" / "lake-30d-compacted"
MARKER = "api-bench.json"
# Part of the marker: a copy made otherwise is made again.
SHAPE = f"maintained, tombstones expired, row groups of {COMPACTED_ROW_GROUP_ROWS}"


def compacted_lake(days: int = 30, symbols: int = 10, workers: int = 2) -> tuple[Path, lake_query.LakeSpec]:
    today = datetime.now(UTC).date()
    wanted = lake_query.LakeSpec(days, symbols, 10, last_day=today - timedelta(days=1))
    spec = lake_query.ensure_lake(SOURCE, wanted, regenerate=False, workers=workers)
    source_marker = (SOURCE / lake_query.MARKER).read_text(encoding="utf-8") + SHAPE
    marker = COMPACTED / MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == source_marker:
        print(f"reusing the compacted copy {COMPACTED}")
        return COMPACTED, spec
    shutil.rmtree(COMPACTED, ignore_errors=True)
    started = time.perf_counter()
    shutil.copytree(SOURCE, COMPACTED, ignore=shutil.ignore_patterns(lake_query.MARKER))
    lake_query.to_delta(COMPACTED)
    report = compact(COMPACTED, table="ohlc")
    tidy_log(COMPACTED, "ohlc")
    expire_before_now(COMPACTED, "ohlc")
    print(f"copied and compacted in {time.perf_counter() - started:.1f}s: {report!r}")
    marker.write_text(source_marker, encoding="utf-8")
    return COMPACTED, spec


if __name__ == "__main__":
    path, spec = compacted_lake()
    print(json.dumps({"lake": str(path), "first_day": str(spec.first_day), "last_day": str(spec.last_day)}))
