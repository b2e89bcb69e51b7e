"""Which files make up a table: the Spark sink's log, adjusted by the compaction manifest.

The stream job's file sink lists every committed file in `<table>/_spark_metadata`
(`lake.commit_log`). Compaction (`lake.compaction`) rewrites a closed partition's many small
files into one file under `<table>/_compacted/<partition>/`, and records the swap in a
manifest, `<table>/_compacted/_manifest/<version>.json`; vacuum records retired partitions.
Readers take the newest manifest version:

    live files = sink-log files - files some partition's entry `replaces`
                               - files of batches up to the entry's `sealed_batch`
                               - files in a retired partition
               + every partition entry's compacted `files`

The stream job's writer (`lake.writer.write_batch`) names each file after its log batch
(`part-b<N>-…`), and a committed file never changes. So a compaction that took a partition's
files of every batch up to N records just N (`sealed_batch`), not a list of files: a file
of a later batch stays visible until the next compaction takes it. Files without a batch in
their name (written by Spark's own file sink or by `lake.writer.append`) are listed in
`replaces` instead.

A reader reads the sink log *before* the manifest. The writer leaves out of its log's
compactions the files the newest manifest has replaced (so the log stays as small as the
uncompacted part of the lake); read in this order, a log that no longer lists a file always
comes with a manifest that has its rows.

A manifest version is written once (to a temporary name, then linked into place, which fails
if that version exists), so a reader sees the state before a compaction or after it, never
half of one; and two compactors cannot both commit the same version. A file the sink writes
into a partition after it was compacted is not in `replaces`, so it stays visible.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lake.commit_log import committed_relative

COMPACTED_DIR = "_compacted"
MANIFEST_DIR = "_manifest"


class ManifestConflict(RuntimeError):
    """Another compaction or vacuum committed the manifest version this one meant to write."""


@dataclass(frozen=True)
class PartitionEntry:
    """A compacted partition: its files, and the sink files they replace (paths relative to the table)."""

    files: tuple[str, ...]
    replaces: tuple[str, ...]
    rows: int
    compacted_at: float  # epoch seconds
    sealed_batch: int = -1  # sink files named after a log batch up to this one are in `files`
    newest: str = ""  # ohlc: a file with each exchange's newest row of `files` (for `latest_bars`)


@dataclass(frozen=True)
class Manifest:
    version: int = 0
    partitions: dict[str, PartitionEntry] = field(default_factory=dict)  # "symbol=X/date=D" -> entry
    retired: frozenset[str] = frozenset()  # partitions removed by vacuum
    garbage: tuple[tuple[str, float], ...] = ()  # (relative path, since): no longer read, not yet deleted

    def to_json(self) -> str:
        """The manifest as readers read it; `garbage` goes to its own file (`write_manifest`)."""
        return json.dumps(
            {
                "version": self.version,
                "partitions": {
                    key: {
                        "files": list(e.files),
                        "replaces": list(e.replaces),
                        "rows": e.rows,
                        "compacted_at": e.compacted_at,
                        "sealed_batch": e.sealed_batch,
                        "newest": e.newest,
                    }
                    for key, e in sorted(self.partitions.items())
                },
                "retired": sorted(self.retired),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, garbage: str | None = None) -> Manifest:
        """`garbage`: the text of the version's garbage file, if wanted (readers do not need it)."""
        data = json.loads(text)
        pending = json.loads(garbage) if garbage is not None else data.get("garbage", ())
        return cls(
            version=int(data["version"]),
            partitions={
                key: PartitionEntry(
                    files=tuple(e["files"]),
                    replaces=tuple(e["replaces"]),
                    rows=int(e["rows"]),
                    compacted_at=float(e["compacted_at"]),
                    sealed_batch=int(e.get("sealed_batch", -1)),
                    newest=str(e.get("newest", "")),
                )
                for key, e in data["partitions"].items()
            },
            retired=frozenset(data.get("retired", ())),
            garbage=tuple((str(p), float(t)) for p, t in pending),
        )


_BATCH = re.compile(r"/part-b(\d+)-[^/]*$")


def batch_of(relative: str) -> int | None:
    """The log batch a sink file was written by, from its name (None for other writers' files)."""
    m = _BATCH.search("/" + relative)
    return int(m[1]) if m else None


def hidden(relative: str, manifest: Manifest, replaced: set[str]) -> bool:
    """Whether a sink-log file is superseded by the manifest (its rows are in compacted files or retired)."""
    partition = partition_of(relative)
    if partition in manifest.retired or relative in replaced:
        return True
    entry = manifest.partitions.get(partition)
    if entry is None or entry.sealed_batch < 0:
        return False
    batch = batch_of(relative)
    return batch is not None and batch <= entry.sealed_batch


def replaced_files(manifest: Manifest) -> set[str]:
    return {f for e in manifest.partitions.values() for f in e.replaces}


def partition_of(relative: str) -> str:
    """'symbol=X/date=D/part-0.parquet' -> 'symbol=X/date=D' ('' for an unpartitioned file)."""
    return relative.rpartition("/")[0]


def manifest_dir(table_dir: Path) -> Path:
    return table_dir / COMPACTED_DIR / MANIFEST_DIR


def _version(path: Path) -> int | None:
    stem = path.name.removesuffix(".json")
    return int(stem) if path.name.endswith(".json") and stem.isdigit() else None


def _garbage_path(folder: Path, version: int) -> Path:
    return folder / f"{version:08d}.garbage.json"


def manifest_versions(table_dir: Path) -> list[tuple[int, Path]]:
    folder = manifest_dir(table_dir)
    if not folder.is_dir():
        return []
    return sorted((v, p) for p in folder.iterdir() if (v := _version(p)) is not None)


def read_manifest(table_dir: Path, garbage: bool = False) -> Manifest:
    """The newest manifest version, or an empty one; with `garbage`, also the files it has
    replaced and not yet deleted (only compaction and vacuum need those: a long list)."""
    versions = manifest_versions(table_dir)
    if not versions:
        return Manifest()
    version, newest = versions[-1]
    pending = _garbage_path(newest.parent, version)
    text = pending.read_text(encoding="utf-8") if garbage and pending.exists() else None
    return Manifest.from_json(newest.read_text(encoding="utf-8"), text if garbage else None)


def _link_new(folder: Path, final: Path, text: str) -> None:
    """Write `text` to `final` atomically; ManifestConflict if `final` exists."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, final)  # atomic, and refuses to replace an existing version
        except FileExistsError:
            raise ManifestConflict(f"{final} exists: another compaction or vacuum committed first") from None
    finally:
        os.unlink(tmp)


def write_manifest(table_dir: Path, manifest: Manifest) -> None:
    """Commit `manifest` as its version; ManifestConflict if that version exists already.

    The garbage file goes first: whoever links it owns the version, so a loser's garbage
    (files still live in the winner's version) can never be taken for the winner's."""
    folder = manifest_dir(table_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _link_new(folder, _garbage_path(folder, manifest.version), json.dumps([list(g) for g in manifest.garbage]))
    _link_new(folder, folder / f"{manifest.version:08d}.json", manifest.to_json())


def prune_versions(table_dir: Path, older_than_s: float) -> int:
    """Delete manifest versions (and their garbage files) but the newest, once older than
    `older_than_s`: a reader reads the newest version as soon as it lists them."""
    versions = manifest_versions(table_dir)
    cutoff = time.time() - older_than_s
    removed = 0
    for version, path in versions[:-1]:
        if path.stat().st_mtime < cutoff:
            _garbage_path(path.parent, version).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def sink_files(table_dir: Path) -> list[str]:
    """The sink log's committed files, relative to the table folder, in log order."""
    return committed_relative(table_dir)


def live_files(table_dir: Path) -> list[Path]:
    """The files a reader should read for this table (see the module docstring)."""
    return [Path(p) for p in live_paths(table_dir)]


def live_paths(table_dir: Path) -> list[str]:
    """`live_files` as strings: what the reader puts in its views, without 10^4 Path objects."""
    return live_paths_and_manifest(table_dir)[0]


def live_paths_and_manifest(table_dir: Path) -> tuple[list[str], Manifest]:
    """`live_paths` and the manifest they were taken with: the log is read first (see the
    module docstring)."""
    sink = sink_files(table_dir)
    manifest = read_manifest(table_dir)
    replaced = replaced_files(manifest)
    live = [f for _, e in sorted(manifest.partitions.items()) for f in e.files]
    live += [rel for rel in sink if not hidden(rel, manifest, replaced)]
    prefix = str(table_dir).rstrip("/") + "/"
    return [prefix + rel for rel in live], manifest
