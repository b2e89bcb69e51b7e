"""Response bodies: JSON by `api.encoding.dumps`, and table downloads (CSV, Parquet, Arrow)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi.responses import Response, StreamingResponse

from api import schemas
from api.encoding import dumps

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": schemas.Problem} for code in (400, 404, 413, 422, 503)}
MEDIA = {
    "csv": ("text/csv", "csv"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "arrow": ("application/vnd.apache.arrow.stream", "arrows"),
}
# The file downloads as an endpoint's OpenAPI 200 content, next to its JSON.
FILE_CONTENT: dict[str, dict[str, object]] = {media: {} for media, _ in MEDIA.values()}


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


class _Chunks:
    """A write-only file for pyarrow's writers that hands out what was written since last asked."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:  # the Parquet writer places its pages by it
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _writer(kind: str, sink: _Chunks, schema: pa.Schema) -> Any:
    if kind == "csv":
        return pa_csv.CSVWriter(sink, schema)
    if kind == "parquet":
        return pq.ParquetWriter(sink, schema)  # a row group per batch
    return pa.ipc.new_stream(sink, schema)


def stream_response(
    reader: pa.RecordBatchReader, kind: str, name: str, headers: dict[str, str], close: Callable[[], None]
) -> StreamingResponse:
    """`reader`'s batches as a CSV, Parquet or Arrow IPC stream download, each sent as it is read
    (decimals stay exact in all three). `close()` runs once the stream ends, or stops part way
    (an error, a client gone)."""

    def chunks() -> Iterator[bytes]:
        try:
            sink = _Chunks()
            with _writer(kind, sink, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    yield sink.take()
            yield sink.take()  # what closing wrote: the Parquet footer, the Arrow end marker
        finally:
            close()

    media, ext = MEDIA[kind]
    headers = {**headers, "Content-Disposition": f'attachment; filename="{name}.{ext}"'}
    return StreamingResponse(chunks(), media_type=media, headers=headers)
