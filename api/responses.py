"""Response bodies: JSON by `api.encoding.dumps`, and table downloads (CSV, Parquet, Arrow)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi.responses import Response

from api import schemas
from api.encoding import dumps

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": schemas.Problem} for code in (400, 404, 413, 422, 503)}
MEDIA = {
    "csv": ("text/csv", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "arrow": ("application/vnd.apache.arrow.stream", "arrows"),
}


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json")


def file_response(table: pa.Table, kind: str, name: str) -> Response:
    """The table as a CSV, Parquet or Arrow IPC stream download (decimals stay exact in all three)."""
    sink = io.BytesIO()
    if kind == "csv":
        pa_csv.write_csv(table, sink)
    elif kind == "parquet":
        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    media, ext = MEDIA[kind]
    return Response(
        sink.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    )
