"""``eid verify FILE.pdf [--json]``: validate a signed PDF as the public endpoint does.

Same trust (our root plus the configured anchors) and the same in-process revocation
data as the API. The operator's own file is validated in this process: the worker pool's
limits protect the server from uploads, and a spawned worker would double the start-up
time of the command. Exit status 0 when every signature passes, 1 otherwise (or when
the file cannot be read), 2 on usage errors (click's own).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from keys.errors import ServiceError
from verification import DocumentReport, async_validate_document

from .settings import Settings


@click.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def verify_command(file: Path, as_json: bool) -> None:
    """Validate the signatures of FILE (a PDF)."""
    from .routes.verify import revocation_provider, trust_config
    from .services import Services

    try:
        services = Services.start(Settings())
    except ServiceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    try:
        report = asyncio.run(
            async_validate_document(
                file,
                trust=trust_config(services),
                revocation=revocation_provider(services),
                document_name=file.name,
            )
        )
    except ServiceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        services.close()
    click.echo(report.to_json() if as_json else summary(report))
    sys.exit(0 if report.indication.value == "TOTAL-PASSED" else 1)


def summary(report: DocumentReport) -> str:
    """A few lines for people: the verdict, then one line per signature."""
    lines = [
        f"{report.document_name or 'document'}: {report.indication.value} "
        f"({report.valid_count} of {report.signature_count} signatures valid)"
    ]
    lines += [f"  {text}" for text in report.errors + report.warnings]
    for signature in report.signatures:
        sub = f" / {signature.sub_indication}" if signature.sub_indication else ""
        when = signature.best_proven_time or signature.claimed_signing_time
        lines.append(
            f"- {signature.field_name}: {signature.indication.value}{sub}, {signature.level or 'no level'}, "
            f"{signature.signer_name or 'unknown signer'}"
            + (f", {when:%Y-%m-%d %H:%M:%S %Z}" if when else "")
        )
        lines += [f"    {text}" for text in signature.errors]
        if signature.caught_by:
            lines.append(f"    caught by: {', '.join(signature.caught_by)}")
    return "\n".join(lines)
