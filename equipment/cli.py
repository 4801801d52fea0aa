"""`flask equipment ...`: run the collector or the simulator, and command the simulator."""
from __future__ import annotations

import asyncio

import click
from flask.cli import AppGroup

from equipment.opcua.collector import PUBLISHING_MS_RANGE

equipment_cli = AppGroup("equipment", help="Equipment telemetry: OPC UA collector and simulator.")


@equipment_cli.command("collector")
@click.option("--assets", default=None, help="Comma-separated asset codes (default: all connected).")
@click.option("--publishing-ms", default=500.0, show_default=True,
              type=click.FloatRange(*PUBLISHING_MS_RANGE), help="OPC UA publishing interval in milliseconds.")
def collector(assets: str | None, publishing_ms: float) -> None:
    """Run the OPC UA collector until SIGTERM or SIGINT (database from DATABASE_URL, like the app)."""
    from flask import current_app

    from equipment.opcua.collector import main

    args = ["--database-url", current_app.config["DATABASE_URL"], "--publishing-ms", str(publishing_ms)]
    if assets:
        args += ["--assets", assets]
    main(args)


@equipment_cli.command("simulator")
def simulator() -> None:
    """Run the OPC UA equipment simulator (OPCUA_SIM_HOST, OPCUA_SIM_PORT)."""
    from equipment.opcua.simulator import run_service

    run_service()


async def _call_simulator(method: str, *args: object) -> object:
    from asyncua import Client, ua

    from equipment.opcua.simulator import NAMESPACE_URI, env_endpoint

    async with Client(env_endpoint(), timeout=5) as client:
        idx = await client.get_namespace_index(NAMESPACE_URI)
        control = client.get_node(ua.NodeId("Simulator", idx))
        return await control.call_method(ua.NodeId(f"Simulator.{method}", idx), *args)


@equipment_cli.command("inject")
@click.argument("variable")
@click.argument("value", type=float)
@click.option("--seconds", default=900.0, show_default=True)
def inject(variable: str, value: float, seconds: float) -> None:
    """Hold a simulated VARIABLE (e.g. CO2-INC-01.Temperature) at VALUE for a while."""
    ok = asyncio.run(_call_simulator("InjectExcursion", variable, value, seconds))
    click.echo("excursion injected" if ok else f"unknown variable {variable}")


@equipment_cli.command("freeze")
@click.argument("variable")
@click.option("--release", is_flag=True, help="Let the value move again.")
def freeze(variable: str, release: bool) -> None:
    """Freeze a simulated VARIABLE at its current value (a stuck sensor)."""
    ok = asyncio.run(_call_simulator("Freeze", variable, not release))
    click.echo(("released" if release else "frozen") if ok else f"unknown variable {variable}")


@equipment_cli.command("drop-connections")
def drop_connections() -> None:
    """Make the simulator close every client connection."""
    count = asyncio.run(_call_simulator("DropConnections"))
    click.echo(f"closed {count} connection(s)")


@equipment_cli.command("rejected")
@click.option("--spool", "spool_path", default=None, help="Spool file (default: COLLECTOR_SPOOL or instance/).")
def rejected(spool_path: str | None) -> None:
    """List the telemetry items the database refused for good, kept in the collector's spool."""
    from flask import current_app

    from equipment.opcua.collector import default_spool_path
    from equipment.opcua.spool import Spool
    from equipment.telemetry import from_us

    path = spool_path or default_spool_path(current_app.config["DATABASE_URL"])
    spool = Spool(path)
    try:
        kept = spool.rejected()
        waiting = len(spool)
    finally:
        spool.close()
    click.echo(f"{path}: {waiting} item(s) waiting for the database, {len(kept)} refused for good")
    for item in kept:
        status = "in the audit trail" if item.reported else "not yet in the audit trail"
        click.echo(f"#{item.seq} {from_us(item.rejected_us).isoformat()} {item.item} -- {item.error} ({status})")


@equipment_cli.command("compact-telemetry")
@click.option("--keep-hours", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Recent window kept as rows (at least 1 hour).")
@click.option("--max-chunks", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Stop after this many chunks (one transaction each); rerun for the rest.")
def compact_telemetry(keep_hours: float, max_chunks: int) -> None:
    """Move telemetry samples older than the recent window into compressed, hashed per-tag hourly chunks."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from app import db
    from app.errors import DomainError
    from equipment.samples import run_compaction

    engine = db.session.get_bind()
    try:
        result = run_compaction(lambda: Session(engine), recent_window=timedelta(hours=keep_hours),
                                max_chunks=max_chunks)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{result.chunks} chunk(s) written ({result.samples:,} samples, {result.merged} merged with late "
               f"samples); {'more to do: run again' if result.remaining else 'nothing older left as rows'}")
    for failure in result.failures:
        click.echo(f"not compacted: {failure}", err=True)
    if result.failures:
        raise SystemExit(1)


@equipment_cli.command("verify-telemetry")
def verify_telemetry() -> None:
    """Decode every telemetry chunk and check it against its hash and the audit trail; exit 1 on any problem."""
    from app import db
    from equipment.samples import verify_telemetry as verify

    result = verify(db.session)
    db.session.rollback()
    if result.ok:
        click.echo(f"telemetry intact: {result.checked} chunk(s), {result.samples:,} samples verified")
        return
    for problem in result.problems:
        click.echo(f"telemetry BROKEN: {problem}", err=True)
    click.echo(f"{len(result.problems)} problem(s) in {result.checked} chunk(s)", err=True)
    raise SystemExit(1)
