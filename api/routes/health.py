"""`GET /v1/health`: freshness per market, the job's newest batches, Kafka lag, feed events, rejects
and the live stream, with one verdict (`api.health` decides it)."""

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, Response

from api import health, queries, schemas
from api.deps import State
from api.lake_access import LakeUnavailable
from api.responses import json_response
from core.broker_offsets import consumer_lag, progress_offsets

router = APIRouter()


@router.get(
    "/health",
    response_model=schemas.Health,
    summary="Freshness, the job, Kafka lag, feed events, rejects",
    responses={503: {"model": schemas.Health, "description": "stale, or a part is down"}},
)
def health_check(state: State) -> Response:
    cfg, lake, feed = state.cfg, state.lake, state.feed
    now = dt.datetime.now(dt.UTC)
    lake_error = lake.error
    markets: list[health.MarketAge] = []
    job: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    job_offsets: dict[str, dict[str, int]] = {}
    snap_age = None
    try:
        with lake.cursor() as (snap, cur):
            snap_age = time.time() - snap.taken_at
            markets = health.ages({k: n.end for k, n in snap.newest.items()}, now)
            for query, batch_id, ts, rows_in, watermark, sources in queries.last_batches(cur):
                job.append(
                    {
                        "query": query,
                        "batch_id": batch_id,
                        "timestamp": ts,
                        "age_s": (now - ts).total_seconds(),
                        "input_rows": rows_in,
                        "watermark": watermark,
                    }
                )
                if query == health.JOB_QUERY:
                    job_offsets = progress_offsets(sources or "[]")
            since = now - dt.timedelta(hours=1)
            events = [{"kind": k, "exchange": e, "count": n} for k, e, n in queries.feed_events_since(cur, since)]
            rejects = [{"reason": r, "count": n} for r, n in queries.rejects_by_reason(cur)]
    except LakeUnavailable as exc:
        lake_error = str(exc)
    broker = state.offsets.get()
    kafka_error = broker if isinstance(broker, str) else None
    lag = consumer_lag(job_offsets, broker) if isinstance(broker, dict) else []
    job_batch = next((j for j in job if j["query"] == health.JOB_QUERY), None)
    reasons = health.reasons(
        lake_error=lake_error,
        markets=markets,
        stale_after_s=cfg.stale_after_s,
        job_batch_age_s=job_batch["age_s"] if job_batch else None,
        kafka_error=kafka_error,
        live_error=None if feed.available else feed.status,
    )
    counts = state.broadcaster.counts
    body = {
        "status": "unhealthy" if reasons else "ok",
        "reasons": reasons,
        "checked_at": now,
        "lake": {
            "ok": lake_error is None,
            "error": lake_error,
            "path": str(lake.path),
            "snapshot_age_s": snap_age,
            "rollups_cached": len(state.rollups),
            "rollups_warm": state.warmer.warm,
            "rollups_warmed_in_s": state.warmer.seconds,
        },
        "freshness": [
            {
                "exchange": m.exchange,
                "symbol": m.symbol,
                "newest_bar_end": m.newest_end,
                "age_s": m.age_s,
                "stale": m.age_s > cfg.stale_after_s,
            }
            for m in markets
        ],
        "job": job,
        "kafka": {
            "ok": kafka_error is None,
            "error": kafka_error,
            "lag": lag,
            "total_lag": sum(x["lag"] for x in lag if x["lag"] is not None) if lag else None,
        },
        "feed_events_last_hour": events,
        "rejects_by_reason": rejects,
        "live_stream": {
            "ok": feed.available,
            "status": feed.status,
            "clients": counts.connected,
            "clients_dropped_slow": counts.dropped_slow,
            "sent": counts.sent,
        },
    }
    return json_response(body, 503 if reasons else 200)
