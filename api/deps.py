"""What the endpoints share, handed to them as FastAPI dependencies over `app.state.api`."""

# No `from __future__ import annotations`: FastAPI reads the dependencies' annotations at run time.

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.requests import HTTPConnection

from api.lake_access import LakeAccess
from api.offsets import Offsets
from api.rollups import MinuteRollups, Warmer
from api.stream import Broadcaster
from core.live_tail import LiveFeed
from core.settings import ApiSettings

KEY_REQUIRED = "a valid X-API-Key header is required"


class Problem(Exception):
    """An error the client caused or must know about: its status and the reason, as `{"detail": …}`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class ApiState:
    """The app's parts, made once by `create_app`."""

    cfg: ApiSettings
    lake: LakeAccess
    feed: LiveFeed
    broadcaster: Broadcaster
    rollups: MinuteRollups
    warmer: Warmer
    offsets: Offsets


def api_state(connection: HTTPConnection) -> ApiState:
    state: ApiState = connection.app.state.api
    return state


State = Annotated[ApiState, Depends(api_state)]


def key_ok(cfg: ApiSettings, given: str | None) -> bool:
    """The one key check, for HTTP and WebSocket alike: no key configured, or the same key given."""
    return not cfg.key or bool(given and hmac.compare_digest(given.encode(), cfg.key.encode()))


def require_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    if not key_ok(api_state(request).cfg, x_api_key):
        raise Problem(401, KEY_REQUIRED)
