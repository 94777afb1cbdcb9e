"""``eid-app``: the reference citizen app on the command line.

Exit codes: 0 done; 1 error (one line on stderr, never a traceback); 2 usage
(including a PIN or PUK of the wrong form); 3 nothing pending within ``--wait``.
``--json`` prints the shapes built in ``wallet.report``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from . import approval, report
from .client import DeviceCredentials, ServiceClient
from .crypto import Curve
from .enrolment import TokenOptions, enroll
from .errors import PinFormatError, VerificationCodeMismatch, WalletError
from .state import Purpose
from .store import Wallet
from .unlock import unblock

DEFAULT_WALLET = "~/.eid-app"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppContext:
    """What the commands share; tests pass their own transport and clock."""

    transport: httpx.BaseTransport | None = None
    """Where HTTP goes (``None``: the network)."""
    clock: approval.Clock | None = None
    """Time for ``--wait`` (``None``: the real clock)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    wallet: Wallet
    """The ``--wallet`` directory."""
    app: AppContext
    """Transport and clock."""


class _Group(click.Group):
    """Turns ``WalletError`` (and anything unforeseen) into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except PinFormatError as exc:
            click.echo(f"eid-app: {exc}", err=True)
            ctx.exit(2)
        except WalletError as exc:
            click.echo(f"eid-app: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if os.environ.get("EID_APP_DEBUG"):
                raise
            click.echo(f"eid-app: unexpected error ({type(exc).__name__}): {exc}", err=True)
            ctx.exit(1)


def _emit(data: Any, text: str, as_json: bool) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2) if as_json else text)


@contextmanager
def _app_client(run: _Run) -> Iterator[ServiceClient]:
    """A client for app calls: the wallet's service, request tokens from its device key."""
    state = run.wallet.load()
    device = DeviceCredentials(device_id=state.device_id, key=run.wallet.device_key())
    with ServiceClient(state.server_url, device=device, transport=run.app.transport) as client:
        yield client


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a request.",
)
request_option = click.option(
    "--request", "request_id", help="Answer this request (default: the oldest pending)."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--wallet",
    "wallet_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="EID_APP_WALLET",
    default=DEFAULT_WALLET,
    show_default=True,
    help="Wallet directory (env EID_APP_WALLET).",
)
@click.pass_context
def cli(ctx: click.Context, wallet_dir: Path) -> None:
    """The reference citizen app of the e-ID service (docs/protocol.md)."""
    app = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    ctx.obj = _Run(wallet=Wallet(wallet_dir), app=app)


@cli.command("enroll")
@click.option("--server", required=True, help="The service base URL, e.g. https://eid.example.")
@click.option("--activation-code", required=True, help="The one-time code from the officer.")
@click.option(
    "--pin1", prompt="PIN1 (4-12 digits, for logging in)", hide_input=True, confirmation_prompt=True
)
@click.option("--pin2", prompt="PIN2 (5-12 digits, for signing)", hide_input=True, confirmation_prompt=True)
@click.option(
    "--curve", type=click.Choice([c.value for c in Curve]), default=Curve.P256.value, show_default=True
)
@click.option("--pkcs11-module", help="Keep the keys on PKCS#11 tokens, through this module.")
@click.option("--token-label", help="Authentication token label; the signing token is LABEL-sign.")
@click.option("--so-pin", help="The tokens' SO PIN (your PUK): sets their user PINs to PIN1 and PIN2.")
@json_option
@click.pass_obj
def enroll_command(
    run: _Run,
    server: str,
    activation_code: str,
    pin1: str,
    pin2: str,
    curve: str,
    pkcs11_module: str | None,
    token_label: str | None,
    so_pin: str | None,
    as_json: bool,
) -> None:
    """Enrol this wallet with an activation code."""
    if (pkcs11_module is None) != (token_label is None):
        raise click.UsageError("--pkcs11-module and --token-label go together")
    if so_pin is not None and pkcs11_module is None:
        raise click.UsageError("--so-pin is only for a PKCS#11 wallet")
    token = None
    if pkcs11_module is not None and token_label is not None:
        token = TokenOptions(module=pkcs11_module, label=token_label, so_pin=so_pin)
    with ServiceClient(server, transport=run.app.transport) as client:
        enrolled = enroll(
            run.wallet,
            client,
            activation_code=activation_code,
            pin1=pin1,
            pin2=pin2,
            curve=Curve(curve),
            token=token,
        )
    _emit(
        report.enrolment(enrolled.state, enrolled.puk),
        report.enrolment_text(enrolled.state, enrolled.puk),
        as_json,
    )


@cli.command("status")
@json_option
@click.pass_obj
def status_command(run: _Run, as_json: bool) -> None:
    """Show the wallet: service, certificates, PIN tries left."""
    state = run.wallet.load()
    _emit(report.status(state), report.status_text(state), as_json)


@cli.command("pending")
@json_option
@click.pass_obj
def pending_command(run: _Run, as_json: bool) -> None:
    """List pending requests with their verification codes."""
    with _app_client(run) as client:
        requests = client.pending_requests()
    good = [item for item in requests if item.code_matches]
    if as_json:
        click.echo(
            json.dumps({"requests": [report.request(item) for item in good]}, ensure_ascii=False, indent=2)
        )
    else:
        click.echo("\n".join(report.request_text(item) for item in good) if good else "No pending requests.")
    bad = [item for item in requests if not item.code_matches]
    for item in bad[:-1]:
        click.echo(f"eid-app: {approval.mismatch_message(item)}", err=True)
    if bad:
        raise VerificationCodeMismatch(approval.mismatch_message(bad[-1]))


@cli.command("approve")
@click.option("--pin", help="PIN1 for a login, PIN2 for a signature (asked after the code is shown).")
@request_option
@wait_option
@json_option
@click.pass_obj
def approve_command(run: _Run, pin: str | None, request_id: str | None, wait: float, as_json: bool) -> None:
    """Approve the next pending request (or --request ID) with its key."""
    with _app_client(run) as client:
        item = approval.next_request(client, request_id=request_id, wait=wait, clock=run.app.clock)
        if not as_json:
            click.echo(report.request_text(approval.check_code(item)))
        if pin is None:
            # The protocol asks apps to show the code before the PIN is entered.
            approval.check_code(item)
            name = Purpose(item.kind).pin_name
            pin = click.prompt(
                f"Compare the code {item.verification_code}, then enter {name}", hide_input=True
            )
        result = approval.approve(run.wallet, client, item, pin=str(pin))
    _emit(report.answer(item, result), f"Answer: {result.state}", as_json)


@cli.command("refuse")
@request_option
@wait_option
@json_option
@click.pass_obj
def refuse_command(run: _Run, request_id: str | None, wait: float, as_json: bool) -> None:
    """Refuse the next pending request (or --request ID); needs no PIN."""
    with _app_client(run) as client:
        item = approval.next_request(client, request_id=request_id, wait=wait, clock=run.app.clock)
        if not as_json:
            click.echo(report.request_text(item))
        if not item.code_matches:
            click.echo(f"eid-app: warning: {approval.mismatch_message(item)}", err=True)
        result = approval.refuse(client, item)
    _emit(report.answer(item, result), f"Answer: {result.state}", as_json)


@cli.command("sign")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the signed PDF.",
)
@click.option("--pin2", prompt="PIN2", hide_input=True, help="PIN2, for the signing key.")
@click.option(
    "--level", type=click.Choice(["B-B", "B-T", "B-LT", "B-LTA"]), default="B-LTA", show_default=True
)
@click.option("--reason", default=None, help="Reason shown in the signature.")
@json_option
@click.pass_obj
def sign_command(
    run: _Run, source: Path, out: Path, pin2: str, level: str, reason: str | None, as_json: bool
) -> None:
    """Sign a PDF with the signing key: upload, approve with PIN2, download."""
    from . import signing

    with _app_client(run) as client:
        result = signing.sign_document(run.wallet, client, source, out, pin2=pin2, level=level, reason=reason)
    _emit(result, f"Signed ({result['level']}): {result['out']}", as_json)


@cli.command("envelopes")
@json_option
@click.pass_obj
def envelopes_command(run: _Run, as_json: bool) -> None:
    """Envelopes you started or must sign (with whose turn it is)."""
    with _app_client(run) as client:
        items = client.envelopes()

    def text(rows: list[dict[str, Any]]) -> str:
        lines = []
        for row in rows:
            signers = ", ".join(f"{s['name']} ({s['state']})" for s in row.get("signers", []))
            turn = "  <- your turn" if row.get("your_turn") else ""
            lines.append(f"{row['id']}  {row['state']:9} {row['document_name']}: {signers}{turn}")
        return "\n".join(lines) or "no envelopes"

    _emit(items, text(items), as_json)


@cli.command("sign-envelope")
@click.argument("envelope_id")
@click.option("--pin2", prompt="PIN2", hide_input=True, help="PIN2, for the signing key.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Save the signed version."
)
@json_option
@click.pass_obj
def sign_envelope_command(run: _Run, envelope_id: str, pin2: str, out: Path | None, as_json: bool) -> None:
    """Add your signature to an envelope: start, approve with PIN2, wait."""
    from . import signing

    with _app_client(run) as client:
        result = signing.sign_envelope(run.wallet, client, envelope_id, out, pin2=pin2)
    _emit(result, f"Signed envelope {envelope_id}", as_json)


@cli.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="Port (0: any).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.pass_obj
def ui_command(run: _Run, port: int, host: str) -> None:
    """Serve a local page listing pending requests that asks for the PIN (a demo phone)."""
    from .ui import serve

    serve(run.wallet, host=host, port=port, transport=run.app.transport)


@cli.command("unblock")
@click.option("--key", "purpose", type=click.Choice([p.value for p in Purpose]), required=True)
@click.option("--puk", prompt="PUK", hide_input=True, help="The PUK (a token wallet: the tokens' SO PIN).")
@click.option("--new-pin", prompt="New PIN", hide_input=True, confirmation_prompt=True)
@click.pass_obj
def unblock_command(run: _Run, purpose: str, puk: str, new_pin: str) -> None:
    """Set a new PIN (blocked or forgotten) with the PUK."""
    chosen = Purpose(purpose)
    unblock(run.wallet, chosen, puk=puk, new_pin=new_pin)
    click.echo(f"{chosen.pin_name} is set and has 3 tries.")


def main() -> None:
    """Console entry point (``eid-app``)."""
    cli(prog_name="eid-app")
