"""`python -m api [--host H] [--port P] [--lake PATH]`: serve the HTTP API with uvicorn (`make api`).

Binds API_HOST (127.0.0.1) on API_PORT (8000). Any other address needs API_KEY: clients
then send it as the X-API-Key header. Access and error logs go to .logs/api.log.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from core.settings import Settings, load

LOG = Path(".logs") / "api.log"


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", dest="api_host", help="address to bind (API_HOST; default 127.0.0.1)")
    parser.add_argument("--port", dest="api_port", type=int, help="port (API_PORT; default 8000)")
    parser.add_argument("--lake", dest="lake_path", help="the lake folder (LAKE_PATH)")
    args = parser.parse_args(argv)
    try:
        settings: Settings = load(**vars(args))
    except ValidationError as exc:
        print(f"api: bad settings:\n{exc}", file=sys.stderr)
        return 2
    cfg = settings.api
    if not loopback(cfg.host) and not cfg.key:
        print(f"api: {cfg.host} is not a loopback address: set API_KEY (clients send it as X-API-Key)", file=sys.stderr)
        return 2
    if not Path(settings.lake.path).is_dir():
        print(
            f"api: the lake folder {settings.lake.path} does not exist yet; serving 503 until it does", file=sys.stderr
        )

    import uvicorn

    from api.app import create_app

    LOG.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "api", "core", "lake"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
    print(f"api: http://{cfg.host}:{cfg.port}/docs over {Path(settings.lake.path).resolve()} (log: {LOG})", flush=True)
    uvicorn.run(create_app(settings), host=cfg.host, port=cfg.port, log_config=None, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
