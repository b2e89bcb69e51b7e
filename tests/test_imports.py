"""The shared core stays light: the ingestor and the stream job (and its Python workers) never load DuckDB."""

from __future__ import annotations

import subprocess
import sys

from core.settings import REPO_ROOT

CORE = ["ingest.__main__", "ingest.producer", "ingest.replay", "jobs.stream_ohlc", "jobs.trades", "jobs.lake_sink"]


def test_the_ingestor_and_the_job_do_not_import_duckdb() -> None:
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in CORE)
    code += "print(sorted(m for m in sys.modules if m == 'duckdb' or m.startswith('duckdb.')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_lake_connect_is_still_there() -> None:
    import lake
    from lake import connect

    assert lake.connect is connect and connect.__module__ == "lake.reader"


def test_the_core_loads_no_reader_and_no_engine() -> None:
    """`import lake` and the core's registries load neither DuckDB, pandas nor pyspark."""
    core = ["lake", "core.settings", "core.schema", "core.tables", "core.trade", "ingest.venues"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in core)
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'pandas', 'pyspark'}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
