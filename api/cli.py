"""The ``eid`` command line for operators.

Every command that prints data for scripts takes ``--json``. Errors print one line on
stderr and exit with status 1 (2 for usage errors); never a traceback.
"""

from __future__ import annotations

import sys

import click

from keys import audit

from . import db
from .cli_certs import cert
from .cli_citizens import citizen
from .cli_clients import client, keys_
from .cli_common import emit, friendly_errors, load_settings, service_session
from .cli_qr import qr_group
from .cli_seal import seal_group
from .cli_verify import verify_command
from .services import init_service


@click.group()
@click.version_option("0.1.0", prog_name="eid")
def main() -> None:
    """Operate the citizen e-ID and e-signature service."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def init(as_json: bool) -> None:
    """Create the data directory, database, keys and PKI (only what is missing)."""
    settings = load_settings()
    pki = init_service(settings)
    data = {
        "data_dir": str(settings.data_dir),
        "database": settings.resolved_database_url.split("@")[-1],
        "root_ca": pki.root.certificate.subject.human_friendly,
        "root_serial": format(pki.root.certificate.serial_number, "x"),
        "citizen_ca_serial": format(pki.citizen_ca.certificate.serial_number, "x"),
        "public_url": settings.public_url,
    }
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@friendly_errors
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API and pages."""
    import uvicorn

    from .logs import config as log_config
    from .services import Services

    settings = load_settings()
    # Fail here, readably, rather than inside a worker's start-up.
    Services.start(settings).close()
    _reset_metrics_directory()
    uvicorn.run(
        "api.app:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # X-Forwarded-* are handled in the app, from EID_PROXY__TRUSTED only (api/proxy.py).
        proxy_headers=False,
        # JSON or text lines with personal codes masked; the app logs each request itself.
        log_config=log_config(settings.logging),
        access_log=False,
        # uvicorn's supervisor kills a worker that does not answer its ping in time (5 s by
        # default); importing pyHanko and friends on a busy machine can take longer, and the
        # replacement would be killed the same way, forever.
        timeout_worker_healthcheck=60,
    )


def _reset_metrics_directory() -> None:
    """With several workers, prometheus_client keeps metric values in files under
    PROMETHEUS_MULTIPROC_DIR; those of a previous run would be added to this one's."""
    import os
    from pathlib import Path

    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


@main.group("db")
def db_() -> None:
    """Database schema."""


@db_.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Apply all pending migrations."""
    settings = load_settings()
    engine = db.make_engine(settings.resolved_database_url)
    try:
        db.upgrade(engine)
        click.echo(f"database at revision {db.current_revision(engine)}")
    finally:
        engine.dispose()


@main.group("audit")
def audit_() -> None:
    """The append-only audit log."""


@audit_.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; exit 1 if any entry was altered or removed."""
    with service_session() as (_settings_, session, _keystore):
        report = audit.verify_chain(session)
    data = {
        "entries": report.entries,
        "intact": report.intact,
        "broken_at": report.broken_at,
        "reason": report.reason,
    }
    emit(
        data,
        as_json,
        lambda d: (
            f"{d['entries']} entries, "
            + ("chain intact" if d["intact"] else f"BROKEN at entry {d['broken_at']}: {d['reason']}")
        ),
    )
    if not report.intact:
        sys.exit(1)


@main.group("config")
def config_() -> None:
    """Configuration."""


@config_.command("docs")
def config_docs() -> None:
    """Print the configuration reference (Markdown) generated from the settings."""
    from .config_docs import render

    click.echo(render(), nl=False)


@main.group("documents")
def documents_() -> None:
    """Transient documents (signing)."""


@documents_.command("sweep")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def documents_sweep(as_json: bool) -> None:
    """Delete documents past their retention (run from cron, or leave it to the server)."""
    from . import signing_flow
    from .services import Services
    from .uploads import document_store

    services = Services.start(load_settings())
    try:
        swept = signing_flow.sweep(services, document_store(services))
    finally:
        services.close()
    emit({"sessions_swept": swept}, as_json, lambda d: f"{d['sessions_swept']} signing session(s) swept")


for command in (cert, citizen, client, keys_, seal_group, qr_group, verify_command):
    main.add_command(command)
