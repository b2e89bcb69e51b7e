"""Each line of a tape checked against the wire record replay sends, before it is sent.

- A line that is not a JSON object is a problem (`malformed_json`), reported with its file and
  line number; replay dead-letters it and goes on.
- A record without `type` and `v` that has the seven trade fields of the first tape format
  (exchange, symbol, price, quantity, timestamp, trade_id, is_buyer_maker) is read as a
  version-1 trade: `type` and `v` are added, and the summary counts it.
- Any other record without `type` is a problem (`not_wire_record`): the job would reject it as
  `missing_type`, so it is not sent.

Records that have a `type` are sent as they are: the job judges their values and lands those it
refuses in `rejects` with a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.schema import RECORD_TRADE, SCHEMA_VERSION
from ingest.tape import open_text

SEVEN_FIELDS = ("exchange", "symbol", "price", "quantity", "timestamp", "trade_id", "is_buyer_maker")


@dataclass(frozen=True)
class TapeProblem:
    path: Path
    line: int
    reason: str
    detail: str
    raw: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason} ({self.detail})"


@dataclass
class TapeCounts:
    lines: int = 0
    sent: int = 0
    upgraded: int = 0  # seven-field records read as version-1 trades
    problems: Counter[str] = field(default_factory=Counter)

    def summary(self, dlq_topic: str | None) -> str | None:
        """One line on what was not sent as read, or None when everything was."""
        parts = []
        if self.upgraded:
            parts.append(f"{self.upgraded:,} of {self.lines:,} records had no type and v: read as version-1 trades")
        if self.problems:
            reasons = ", ".join(f"{reason} {n:,}" for reason, n in self.problems.most_common())
            where = f", sent to {dlq_topic}" if dlq_topic else ""
            parts.append(
                f"{sum(self.problems.values()):,} of {self.lines:,} lines are not wire records ({reasons}){where}"
            )
        return "; ".join(parts) or None


def as_wire(record: Any) -> tuple[dict[str, Any] | None, str, str]:
    """(the record to send, or None; reason; detail) for one decoded line."""
    if not isinstance(record, dict):
        return None, "malformed_json", "not a JSON object"
    if "type" in record:
        return record, "", ""
    if "v" not in record and all(name in record for name in SEVEN_FIELDS):
        return {"type": RECORD_TRADE, "v": SCHEMA_VERSION, **record}, "upgraded", ""
    return None, "not_wire_record", "missing type"


def checked_records(
    path: Path, counts: TapeCounts, on_problem: Callable[[TapeProblem], None]
) -> Iterator[dict[str, Any]]:
    """The tape's wire records; each problem line goes to `on_problem` and is not yielded."""
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            counts.lines += 1
            try:
                decoded = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                problem = TapeProblem(path, number, "malformed_json", str(exc), line.rstrip("\n"))
            else:
                record, reason, detail = as_wire(decoded)
                if record is not None:
                    counts.upgraded += reason == "upgraded"
                    counts.sent += 1
                    yield record
                    continue
                problem = TapeProblem(path, number, reason, detail, line.rstrip("\n"))
            counts.problems[problem.reason] += 1
            on_problem(problem)
