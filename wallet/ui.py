"""``eid-app ui``: the wallet as a small local web page, the citizen's phone in effect.

It lists the pending requests with the verification code the app computed from each hash
and asks for the PIN, exactly as ``eid-app approve`` does; a request whose code does not
match its hash is shown with a warning and cannot be approved. Standard library HTTP
server, bound to 127.0.0.1: only this machine reaches it. POSTs carry a per-process token
and a Host header naming this server, so another web page cannot answer for the citizen
(nor read the page through DNS rebinding).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from . import approval
from .client import DeviceCredentials, ServiceClient
from .errors import Blocked, PinFormatError, VerificationCodeMismatch, WalletError, WrongPin
from .messages import ApprovalRequest
from .state import Purpose
from .store import Wallet

CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
TEXTS = {
    "en": {
        "title": "e-ID app (demo wallet)",
        "intro": "This page stands in for the citizen's phone. Compare the code with the one on the web page "
        "before you enter the PIN.",
        "none": "No pending requests. This page updates by itself.",
        "auth": "Log in",
        "sign": "Sign",
        "code": "Verification code",
        "pin": "{pin}",
        "approve": "Confirm",
        "refuse": "Refuse",
        "mismatch": "The service's code does not match what would be signed. Do not approve: refuse it.",
        "approved": "Confirmed.",
        "refused": "Refused.",
        "wrong": "Wrong {pin}: {tries} tries left.",
        "blocked": "{pin} is blocked. Unblock it with your PUK: eid-app unblock.",
        "failed": "Not done: {detail}",
        "status": "{pin}: {tries} tries left",
        "status_blocked": "{pin}: blocked",
        "citizen": "Citizen",
        "service": "Service",
        "lang": "Eesti",
    },
    "et": {
        "title": "e-ID rakendus (näidis)",
        "intro": "See leht asendab kodaniku telefoni. Võrdle koodi veebilehel olevaga enne, kui sisestad PIN-i.",
        "none": "Ootel päringuid ei ole. Leht uueneb ise.",
        "auth": "Sisselogimine",
        "sign": "Allkirjastamine",
        "code": "Kontrollkood",
        "pin": "{pin}",
        "approve": "Kinnita",
        "refuse": "Keeldu",
        "mismatch": "Teenuse kood ei vasta allkirjastatavale. Ära kinnita: keeldu.",
        "approved": "Kinnitatud.",
        "refused": "Keeldutud.",
        "wrong": "Vale {pin}: {tries} katset jäänud.",
        "blocked": "{pin} on blokeeritud. Vabasta see PUK-koodiga: eid-app unblock.",
        "failed": "Ei õnnestunud: {detail}",
        "status": "{pin}: {tries} katset jäänud",
        "status_blocked": "{pin}: blokeeritud",
        "citizen": "Kodanik",
        "service": "Teenus",
        "lang": "English",
    },
}
SCRIPT = b"""// Reload when the pending requests change, unless the citizen is typing a PIN.
(function () {
  "use strict";
  const list = document.getElementById("requests");
  if (!list) return;
  setInterval(async function () {
    const typing = Array.from(document.querySelectorAll("input[type=password]")).some(
      (input) => input.value !== "" || input === document.activeElement);
    if (typing) return;
    try {
      const answer = await fetch("/requests.json", {cache: "no-store"});
      const ids = (await answer.json()).ids.join(" ");
      if (ids !== list.dataset.ids) window.location.replace("/?lang=" + document.documentElement.lang);
    } catch (e) { /* the app is restarting: try again next time */ }
  }, 1500);
})();
"""
STYLE = b"""body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1a1a1a;line-height:1.5}
header{background:#14532d;color:#fff;padding:.6rem 1rem;display:flex;justify-content:space-between}
header a{color:#fff}main{max-width:28rem;margin:1rem auto;background:#fff;padding:1rem 1.25rem;border-radius:.5rem}
.request{border:1px solid #c9ced6;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}
.code{font-size:3rem;font-weight:700;letter-spacing:.4rem;text-align:center;margin:.25rem 0}
label{display:block;font-weight:600;margin-top:.5rem}input{font-size:1.2rem;padding:.5rem;width:100%;box-sizing:border-box}
button{font-size:1rem;padding:.6rem 1.1rem;margin:.75rem .5rem 0 0;border:2px solid #14532d;border-radius:.35rem;
background:#14532d;color:#fff;cursor:pointer}button.secondary{background:#fff;color:#14532d}
.message{font-weight:600;padding:.5rem .75rem;background:#e3f4e8;border-radius:.35rem}
.warning{color:#a4161a;font-weight:600}.small{font-size:.875rem;color:#4a4f57}
:focus-visible{outline:3px solid #c65a00;outline-offset:2px}
"""


@dataclass
class WalletUi:
    """The page's state: the wallet, how to reach the service, the form token."""

    wallet: Wallet
    transport: httpx.BaseTransport | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> ServiceClient:
        state = self.wallet.load()
        device = DeviceCredentials(device_id=state.device_id, key=self.wallet.device_key())
        return ServiceClient(state.server_url, device=device, transport=self.transport)

    def pending(self) -> list[ApprovalRequest]:
        with self.client() as client:
            return client.pending_requests()

    def answer(self, request_id: str, decision: str, pin: str) -> tuple[str, dict[str, Any]]:
        """Approve or refuse; returns a message key and its parameters."""
        with self.lock, self.client() as client:
            item = approval.next_request(client, request_id=request_id)
            name = Purpose(item.kind).pin_name
            try:
                if decision == "refuse":
                    approval.refuse(client, item)
                    return "refused", {}
                approval.approve(self.wallet, client, item, pin=pin)
                return "approved", {}
            except WrongPin as exc:
                return "wrong", {"pin": name, "tries": exc.tries_left}
            except Blocked:
                return "blocked", {"pin": name}
            except (PinFormatError, VerificationCodeMismatch, WalletError) as exc:
                return "failed", {"detail": str(exc)}


def _lang(query: dict[str, list[str]], accept: str) -> str:
    wanted = (query.get("lang") or [""])[0]
    if wanted in TEXTS:
        return wanted
    return "et" if accept.lower().startswith("et") else "en"


def _message(lang: str, key: str, raw_params: str) -> str:
    """The message after an answer (from the redirect's query); nothing when it is not ours."""
    if key not in ("approved", "refused", "wrong", "blocked", "failed"):
        return ""
    try:
        params = json.loads(raw_params)
        return TEXTS[lang][key].format(**params) if isinstance(params, dict) else ""
    except (ValueError, KeyError, IndexError):
        return ""


def render_page(ui: WalletUi, lang: str, message: str = "") -> str:
    text = TEXTS[lang]
    esc = html.escape
    state = ui.wallet.load()
    try:
        requests = ui.pending()
        problem = ""
    except WalletError as exc:
        requests, problem = [], text["failed"].format(detail=str(exc))
    tries = {Purpose.AUTH: state.tries.auth, Purpose.SIGN: state.tries.sign}
    status = " · ".join(
        text["status"].format(pin=p.pin_name, tries=n)
        if n > 0
        else text["status_blocked"].format(pin=p.pin_name)
        for p, n in tries.items()
    )
    other = "en" if lang == "et" else "et"
    parts = [
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{esc(text["title"])}</title><link rel="stylesheet" href="/ui.css"></head><body>',
        f'<header><strong>{esc(text["title"])}</strong> <a href="/?lang={other}" lang="{other}">{text["lang"]}</a></header>',
        f'<main><p class="small">{esc(text["citizen"])}: {esc(str(state.citizen))} · {esc(text["service"])}: '
        f"{esc(state.server_url)}<br>{esc(status)}</p>",
        f"<p>{esc(text['intro'])}</p>",
        f'<div role="status" aria-live="polite">{f"<p class=message>{esc(message)}</p>" if message else ""}</div>',
    ]
    if problem:
        parts.append(f'<p class="warning" role="alert">{esc(problem)}</p>')
    ids = " ".join(item.id for item in requests)
    parts.append(f'<div id="requests" data-ids="{esc(ids)}">')
    if not requests:
        parts.append(f"<p>{esc(text['none'])}</p>")
    for item in requests:
        pin = Purpose(item.kind).pin_name
        field_id = f"pin-{esc(item.id)}"
        parts.append(
            f'<section class="request" aria-labelledby="h-{esc(item.id)}">'
            f'<p class="small">{esc(text[item.kind])}</p><h2 id="h-{esc(item.id)}">{esc(item.display_text)}</h2>'
            f'<p class="small">{esc(text["code"])}</p><p class="code">{esc(item.verification_code)}</p>'
            f'<form method="post" action="/answer"><input type="hidden" name="token" value="{ui.token}">'
            f'<input type="hidden" name="request" value="{esc(item.id)}"><input type="hidden" name="lang" value="{lang}">'
        )
        if item.code_matches:
            parts.append(
                f'<label for="{field_id}">{esc(pin)}</label>'
                f'<input id="{field_id}" name="pin" type="password" inputmode="numeric" autocomplete="off">'
                f'<button type="submit" name="decision" value="approve">{esc(text["approve"])}</button>'
            )
        else:
            parts.append(f'<p class="warning" role="alert">{esc(text["mismatch"])}</p>')
        parts.append(
            f'<button type="submit" name="decision" value="refuse" class="secondary">{esc(text["refuse"])}</button>'
            "</form></section>"
        )
    parts.append('</div></main><script src="/ui.js"></script></body></html>')
    return "".join(parts)


def handler_for(ui: WalletUi, allowed_hosts: set[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "eid-app-ui"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass  # quiet: the console shows the address and nothing personal

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _host_ok(self) -> bool:
            if self.headers.get("Host", "") in allowed_hosts:
                return True
            self._send(421, b"wrong host", "text/plain")
            return False

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            if not self._host_ok():
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/ui.js":
                self._send(200, SCRIPT, "text/javascript; charset=utf-8")
            elif url.path == "/ui.css":
                self._send(200, STYLE, "text/css; charset=utf-8")
            elif url.path == "/requests.json":
                try:
                    ids = [item.id for item in ui.pending()]
                except WalletError:
                    ids = []
                self._send(200, json.dumps({"ids": ids}).encode(), "application/json")
            elif url.path == "/":
                lang = _lang(query, self.headers.get("Accept-Language", ""))
                message = _message(lang, (query.get("m") or [""])[0], (query.get("p") or ["{}"])[0])
                self._send(200, render_page(ui, lang, message).encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802 - the base class's name
            if not self._host_ok():
                return
            length = min(int(self.headers.get("Content-Length") or 0), 10_000)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
            if urlsplit(self.path).path != "/answer" or not secrets.compare_digest(
                form.get("token", ""), ui.token
            ):
                self._send(403, b"forbidden", "text/plain")
                return
            lang = form.get("lang") if form.get("lang") in TEXTS else "en"
            try:
                key, params = ui.answer(
                    form.get("request", ""), form.get("decision", ""), form.get("pin", "")
                )
            except WalletError as exc:
                key, params = "failed", {"detail": str(exc)}
            location = "/?" + urlencode({"lang": lang, "m": key, "p": json.dumps(params)})
            self._send(303, b"", "text/plain", {"Location": location})

    return Handler


def serve(wallet: Wallet, *, host: str, port: int, transport: httpx.BaseTransport | None = None) -> None:
    """Serve the page until interrupted."""
    wallet.load()  # fail now, not at the first visit, when the wallet is missing
    ui = WalletUi(wallet=wallet, transport=transport)
    server = ThreadingHTTPServer((host, port), handler_for(ui, _hosts(host, port)))
    bound = server.server_address[1]
    server.RequestHandlerClass = handler_for(ui, _hosts(host, int(bound)))
    print(f"Demo wallet at http://{host}:{bound}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _hosts(host: str, port: int) -> set[str]:
    names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {host}
    return {f"{name}:{port}" for name in names}
