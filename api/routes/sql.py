"""`POST /v1/sql`: one read-only SELECT over the lake's views, through `lake.sandbox`."""

from fastapi import APIRouter, Response

from api import schemas
from api.deps import Problem, State
from api.responses import json_response
from lake.sandbox import QueryRefused, run_query

router = APIRouter()


@router.post("/sql", response_model=schemas.SqlResult, summary="One read-only SELECT (lake.sandbox)")
def sql(state: State, body: schemas.SqlQuery) -> Response:
    cfg = state.cfg
    max_rows = min(body.max_rows or cfg.sql_max_rows, cfg.sql_max_rows)
    with state.lake.cursor() as (_, cur):
        try:
            result = run_query(cur, body.query, max_rows=max_rows, timeout_s=cfg.request_timeout_s * 0.8)
        except QueryRefused as exc:
            raise Problem(400, str(exc)) from None
    table = result.table
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    data = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [list(r) for r in zip(*data, strict=True)] if data else []
    return json_response({"columns": columns, "rows": rows, "row_count": len(rows), "truncated": result.truncated})
