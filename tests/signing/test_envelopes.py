"""Envelopes: two citizens sign one PDF in turn with `eid-app`; pdfsig checks both signatures."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.api.test_admin_api import _client, _token
from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import fresh_code
from tests.signing.conftest import make_pdf
from tests.signing.test_stamp import qr_codes
from tests.signing.witnesses import pdfsig
from tests.wallet.test_end_to_end import app, enrol


def _rp(server: RunningServer) -> dict[str, str]:
    client_id, secret = _client(server, "signing")
    token = _token(server, client_id, secret, scope="signing").json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _create(
    server: RunningServer, headers: dict[str, str], pdf: Path, *codes: str, **options: str
) -> httpx.Response:
    params: list[tuple[str, str]] = [("signer", code) for code in codes]
    params += [("name", "lease.pdf"), *options.items()]
    return httpx.post(
        server.url + "/api/v1/envelopes",
        params=params,
        content=pdf.read_bytes(),
        headers={**headers, "Content-Type": "application/pdf"},
        timeout=60,
    )


@pytest.fixture(scope="module")
def two_signers(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    out = []
    for name in ("first", "second"):
        wallet = tmp_path_factory.mktemp(name) / "wallet"
        code, _ = enrol(server, wallet)
        out.append((code, wallet))
    return out


def test_two_signers_in_order(
    server: RunningServer, two_signers: list[tuple[str, Path]], tmp_path: Path, nss_db: str
) -> None:
    (code_a, wallet_a), (code_b, wallet_b) = two_signers
    rp = _rp(server)
    created = _create(server, rp, make_pdf(tmp_path / "lease.pdf"), code_a, code_b)
    assert created.status_code == 201, created.text
    envelope = created.json()
    assert [s["state"] for s in envelope["signers"]] == ["waiting", "waiting"]

    listed = json.loads(app(wallet_b, "envelopes", "--json").stdout)
    mine = next(e for e in listed if e["id"] == envelope["id"])
    assert mine["your_turn"] is False  # ordered: the first signer goes first
    early = app(wallet_b, "sign-envelope", envelope["id"], "--pin2", "12345", check=False)
    assert early.returncode == 1 and "earlier signer" in early.stderr

    assert json.loads(app(wallet_a, "envelopes", "--json").stdout)[0]["your_turn"] is True
    app(wallet_a, "sign-envelope", envelope["id"], "--pin2", "12345")
    halfway = httpx.get(f"{server.url}/api/v1/envelopes/{envelope['id']}", headers=rp).json()
    assert [s["state"] for s in halfway["signers"]] == ["signed", "waiting"] and halfway["state"] == "open"

    out = tmp_path / "signed.pdf"
    app(wallet_b, "sign-envelope", envelope["id"], "--pin2", "12345", "--out", str(out))
    done = httpx.get(f"{server.url}/api/v1/envelopes/{envelope['id']}", headers=rp).json()
    assert done["state"] == "completed" and all(s["state"] == "signed" for s in done["signers"])

    downloaded = httpx.get(f"{server.url}/api/v1/envelopes/{envelope['id']}/document", headers=rp)
    assert downloaded.content == out.read_bytes()
    # B-LTA: each signature is followed by the DSS and a document time stamp, so pdfsig
    # lists four: A, time stamp, B, time stamp; the last covers the whole file.
    report = pdfsig(nss_db, out)
    # (pdfsig 22.12 does not validate document time stamps, only lists them.)
    assert len(report) == 4
    citizens, stamps = report[0::2], report[1::2]
    for signature in citizens:
        assert "Signature Type: ETSI.CAdES.detached" in signature
        assert "Signature Validation: Signature is Valid." in signature
        assert "Certificate Validation: Certificate is Trusted." in signature
    assert [code_a in " ".join(sig) for sig in citizens] == [True, False]
    assert [code_b in " ".join(sig) for sig in citizens] == [False, True]
    assert all("Signer Certificate Common Name: EID Demo Authority Time-Stamping Unit" in s for s in stamps)
    assert "Total document signed" in report[3]
    # Two stamps, stacked, each with its own QR code leading to the verification page.
    urls = [text for text, _, _ in qr_codes(out, 1, tmp_path)]
    assert len(urls) == 2 and all(url.startswith(server.url + "/v/") for url in urls)


def test_any_order_cancel_and_refusal(
    server: RunningServer, two_signers: list[tuple[str, Path]], tmp_path: Path
) -> None:
    (code_a, wallet_a), (code_b, wallet_b) = two_signers
    rp = _rp(server)
    pdf = make_pdf(tmp_path / "memo.pdf")
    created = _create(server, rp, pdf, code_a, code_b, ordered="false", level="B-B", visible="false").json()
    assert json.loads(app(wallet_b, "envelopes", "--json").stdout)[0]["your_turn"] is True
    app(wallet_b, "sign-envelope", created["id"], "--pin2", "12345")  # the second signer first

    cancelled = httpx.post(f"{server.url}/api/v1/envelopes/{created['id']}/cancel", headers=rp)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    late = app(wallet_a, "sign-envelope", created["id"], "--pin2", "12345", check=False)
    assert late.returncode == 1 and "cancelled" in late.stderr

    # A signer who refuses the approval declines the envelope (the protocol client plays the app).
    code_c = fresh_code()
    added = json.loads(
        server.env.run_eid(
            "citizen", "add", "--id-code", code_c, "--given-name", "Tiit", "--family-name", "Tamm", "--json"
        ).stdout
    )
    citizen_app = ProtocolApp(server.url)
    citizen_app.enrol(added["activation_code"])
    declined = _create(server, rp, pdf, code_c, level="B-B").json()
    path = f"/api/v1/envelopes/{declined['id']}/sign"
    started = citizen_app.call("POST", path, token=citizen_app.token("POST", path))
    assert started.status_code == 201, started.text
    again = citizen_app.call("POST", path, token=citizen_app.token("POST", path))
    assert again.status_code == 409  # one signature at a time
    request = next(r for r in citizen_app.pending() if r["kind"] == "sign")
    assert request["verification_code"] == started.json()["verification_code"]
    assert citizen_app.refuse(request).status_code == 200
    after = httpx.get(f"{server.url}/api/v1/envelopes/{declined['id']}", headers=rp).json()
    assert after["state"] == "declined" and after["signers"][0]["state"] == "declined"


def test_bad_envelopes(server: RunningServer, two_signers: list[tuple[str, Path]], tmp_path: Path) -> None:
    (code_a, wallet_a), _ = two_signers
    rp = _rp(server)
    pdf = make_pdf(tmp_path / "x.pdf")
    unknown = _create(server, rp, pdf, "38001085718")
    assert unknown.status_code == 422 and "signer 1" in unknown.json()["detail"]
    assert "38001085718" not in unknown.text
    twice = _create(server, rp, pdf, code_a, code_a)
    assert twice.status_code == 422 and "twice" in twice.json()["detail"]
    garbage = httpx.post(
        server.url + "/api/v1/envelopes",
        params={"signer": code_a},
        content=b"not a pdf",
        headers={**rp, "Content-Type": "application/pdf"},
    )
    assert garbage.status_code == 422 and garbage.headers["content-type"] == "application/problem+json"
    admin_id, admin_secret = _client(server, "admin")
    wrong_scope = _token(server, admin_id, admin_secret, scope="admin").json()["access_token"]
    denied = _create(server, {"Authorization": f"Bearer {wrong_scope}"}, pdf, code_a)
    assert denied.status_code in (401, 403)
    other = httpx.get(server.url + "/api/v1/envelopes/ev-doesnotexist", headers=rp)
    assert other.status_code == 404
