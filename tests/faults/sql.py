"""Generated statements against the SQL sandbox (`lake.sandbox`): none accepted may write, or read
anything but the lake's table data; no lake file may change.

Statements come from a small grammar mixing reads of the views, table functions over paths
inside and outside the lake, writes, COPY, ATTACH, PRAGMA, SET, CALL, INSTALL/LOAD, EXPORT,
comments, case and whitespace games, and multi-statements. Canaries outside the table data (a
file next to the lake, one in a sibling folder whose name starts like the lake's, /etc/hostname,
code in the lake folder, an orphan file in a table's folder) must never appear in an accepted
result, nor may an accepted result show the server's settings.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import lake
from lake.sandbox import QueryRefused, run_query
from tests.faults import FaultRow

CANARY = "canary-7f3a9c"


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def plant_canaries(lake_dir: Path) -> list[str]:
    """Files outside the lake holding CANARY; their paths, as an attacker would name them."""
    outside = lake_dir.parent / "secret.csv"
    outside.write_text(f"secret\n{CANARY}\n")
    sibling = lake_dir.parent / (lake_dir.name + "2")  # shares the lake's prefix
    sibling.mkdir(exist_ok=True)
    (sibling / "s.csv").write_text(f"secret\n{CANARY}\n")
    # Inside the lake folder but not table data: code beside the tables (the default LAKE_PATH is
    # the `lake` package) and an orphan file in a table's folder that no commit names.
    (lake_dir / "settings.py").write_text(f"SECRET = '{CANARY}'\n")
    (lake_dir / "ohlc" / "orphan.csv").write_text(f"secret\n{CANARY}\n")
    return [
        str(outside), str(sibling / "s.csv"), f"{lake_dir}/../secret.csv", "/etc/hostname", "/etc/passwd",
        f"{lake_dir}/settings.py", f"{lake_dir}/ohlc/orphan.csv",
    ]  # fmt: skip


def statements(lake_dir: Path, paths: list[str], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    inside = [
        f"{lake_dir}/ohlc/**/*.parquet",
        f"{lake_dir}/ohlc/_delta_log/00000000000000000000.json",
        f"{lake_dir}/x.csv",
    ]
    views = ["ohlc", "rejects", "feed_events", "volatility", "predictions", "latest_bars", "late", "progress"]
    readers = ["read_csv", "read_csv_auto", "read_text", "read_blob", "read_json", "read_parquet", "glob", "sniff_csv"]

    def path() -> str:
        return rng.choice(paths + inside)

    def select() -> str:
        kind = rng.randrange(7)
        if kind == 0:
            return f"SELECT * FROM {rng.choice(views)} LIMIT {rng.randrange(5)}"
        if kind == 1:
            return f"SELECT * FROM {rng.choice(readers)}('{path()}')"
        if kind == 2:
            return f"SELECT * FROM query('{rng.choice(writes()).replace(chr(39), chr(39) * 2)}')"
        if kind == 3:
            return f"WITH t AS (SELECT * FROM {rng.choice(readers)}('{path()}')) SELECT * FROM t"
        if kind == 4:
            return f"SELECT getenv('HOME'), current_setting('{rng.choice(['allowed_directories', 'threads'])}')"
        if kind == 5:
            return f"FROM '{path()}'"
        return f"SELECT * FROM {rng.choice(views)} UNION ALL BY NAME SELECT * FROM read_csv('{path()}')"

    def writes() -> list[str]:
        target = rng.choice([f"{lake_dir}/ohlc/evil.parquet", f"{lake_dir}/x.csv", str(lake_dir.parent / "o.csv")])
        return [
            f"COPY (SELECT 1) TO '{target}'", f"COPY ohlc TO '{target}'", "CREATE TABLE t AS SELECT 1",
            "INSERT INTO ohlc SELECT * FROM ohlc", "DELETE FROM ohlc", "DROP VIEW ohlc", "CREATE VIEW v AS SELECT 1",
            f"ATTACH '{lake_dir.parent / 'x.duckdb'}'", "DETACH memory", "PRAGMA enable_profiling",
            "SET enable_external_access = true", "SET allowed_directories = ['/']", "RESET lock_configuration",
            "CALL pragma_version()", "INSTALL httpfs", "LOAD httpfs", f"EXPORT DATABASE '{lake_dir}/dump'",
            "CHECKPOINT", "VACUUM", "BEGIN TRANSACTION", "CREATE SECRET s (TYPE s3)",
            "SELECT set_config('threads', '1')",
        ]  # fmt: skip

    out = []
    for _ in range(n):
        sql = select() if rng.random() < 0.6 else rng.choice(writes())
        games = rng.randrange(6)
        if games == 1:
            sql = f"/* {rng.choice(['x', ';', '*/ DROP VIEW ohlc; /*'])} */ {sql}"
        elif games == 2:
            sql = f"{sql}; {rng.choice(writes())}"
        elif games == 3:
            sql = f"{sql} -- ; COPY (SELECT 1) TO '{lake_dir}/y.csv'"
        elif games == 4:
            sql = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in sql)
        elif games == 5:
            sql = f"\n\t {sql} ;  "
        out.append(sql)
    return out


def campaign(lake_dir: Path, n: int = 10_000, seed: int = 7) -> tuple[FaultRow, Counter[str]]:
    paths = plant_canaries(lake_dir)
    watched = [lake_dir, lake_dir.parent]
    before = {str(f): _checksums(f) if f == lake_dir else sorted(p.name for p in f.iterdir()) for f in watched}
    con = lake.connect(lake_dir)
    outcomes: Counter[str] = Counter()
    leaks = []
    for sql in statements(lake_dir, paths, n, seed):
        try:
            result = run_query(con, sql, max_rows=50, timeout_s=5)
        except QueryRefused as exc:
            outcomes["refused: " + str(exc).split(":")[0][:40]] += 1
            continue
        outcomes["accepted"] += 1
        text = str(result.table.to_pylist())
        if CANARY in text or "root:x:0:0" in text or f"{lake_dir.resolve()}/" in text:  # or the lake's paths
            leaks.append(sql)
    con.close()
    after = {str(f): _checksums(f) if f == lake_dir else sorted(p.name for p in f.iterdir()) for f in watched}
    changed = before != after
    row = FaultRow(
        "SQL sandbox: generated statements", n, not leaks and not changed, lost=0, duplicated=0,
        detail=f"accepted {outcomes['accepted']:,}, refused {n - outcomes['accepted']:,}; "
        f"reads of anything but table data {len(leaks)}; lake or its folder changed: {'YES' if changed else 'no'}",
    )  # fmt: skip
    if leaks:
        row.detail += f"; first leak: {leaks[0][:120]}"
    return row, outcomes
