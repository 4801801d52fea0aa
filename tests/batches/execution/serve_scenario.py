"""Serve the app on 127.0.0.1 over a fresh database holding the floor scenario.

python -m tests.batches.execution.serve_scenario DATABASE_URL [--batches N] [--port P]
Prints one JSON line (the scenario and the port) when ready, then serves until killed."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

from typing import Any, Callable

from werkzeug.serving import make_server

Builder = Callable[[Any, dict[str, Any]], dict[str, Any]]


def serve_with(*builders: Builder, prefix: str = "nkmes-browser-") -> None:
    """Serve the one-batch floor scenario plus what each builder adds to it (their dicts merged into the JSON
    line), for the browser tests of the parts built on it: python -m <module> DATABASE_URL [--port P]."""
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    from app import create_app, db
    from app.cli import upgrade_database
    from config import TestConfig
    from tests.batches.execution import scenario

    upgrade_database(args.database_url)
    config = TestConfig()
    config.DATABASE_URL = args.database_url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix=prefix)
    app = create_app(config)
    info = scenario.build(db.session, batches=1)
    for build in builders:
        info.update(build(db.session, info))
    db.session.commit()
    db.session.remove()
    _serve(app, args.port, info)


def _serve(app: Any, port: int, info: dict[str, Any]) -> None:
    server = make_server("127.0.0.1", port, app, threaded=True)
    info["port"] = server.server_port
    print(json.dumps(info), flush=True)
    try:
        server.serve_forever()
    finally:
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--car-batches", type=int, default=0)
    parser.add_argument("--demo", action="store_true", help="add every domain's demo data (as `flask demo-data`)")
    args = parser.parse_args()

    from app import create_app, db
    from app.cli import upgrade_database
    from config import TestConfig
    from tests.batches.execution import scenario

    upgrade_database(args.database_url)
    config = TestConfig()
    config.DATABASE_URL = args.database_url
    config.INSTANCE_TMP = tempfile.mkdtemp(prefix="nkmes-browser-")
    app = create_app(config)
    if args.demo:  # first, as on a fresh `make run`: demo users, every domain's demo data, the signed demo batches
        from app.cli import create_demo

        create_demo(db.session)
    info = scenario.build(db.session, batches=args.batches, car_batches=args.car_batches)
    db.session.commit()
    db.session.remove()
    _serve(app, args.port, info)


if __name__ == "__main__":
    main()
