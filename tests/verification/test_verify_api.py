"""The public validation surface: ``POST /api/v1/verify`` (JSON and sealed PDF), the
``/verify`` pages and ``eid verify``.

The app runs in process on the session's data directory (its own services, a small
upload limit); the validation itself runs in the worker processes as in production.
The sealed PDF report is checked by pdfsig (NSS) and by the service itself.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from api.services import Services
from api.settings import LimitSettings
from keys.issuance import Purpose
from signing import Level
from tests.conftest import ServiceEnv, issue_citizen
from tests.signing.conftest import Trust, make_pdf
from tests.signing.conftest import nss_db as nss_db  # noqa: F401 - a fixture, used by name
from tests.signing.conftest import root_pem as root_pem  # noqa: F401 - a fixture, used by name
from tests.signing.conftest import trust as trust  # noqa: F401 - a fixture, used by name
from tests.signing.witnesses import pdfsig
from tests.verification._pdfs import sign

with warnings.catch_warnings():
    # Starlette 1.x would rather use "httpx2"; the httpx we have works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def client(service_env: ServiceEnv) -> Iterator[TestClient]:
    settings = service_env.settings.model_copy(update={"limits": LimitSettings(document_bytes=LIMIT)})
    services = Services.start(settings)
    app = create_app(settings, services)
    with TestClient(app) as test_client:
        yield test_client
    pool = getattr(app.state, "verification_pool", None)
    if pool is not None:
        pool.close()
    services.close()


@pytest.fixture(scope="module")
def documents(
    trust: Trust, service_env: ServiceEnv, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("api")
    citizen = issue_citizen(service_env, Purpose.SIGNING)
    good = sign(trust, citizen, make_pdf(directory / "in.pdf"), directory / "contract.pdf", Level.B_B)
    altered = directory / "altered.pdf"
    altered.write_bytes(good.read_bytes().replace(b"vabadena", b"vabadenA", 1))
    return {"good": good, "altered": altered}


def upload(
    client: TestClient, path: str, content: bytes, name: str = "contract.pdf", **params: str
) -> object:
    return client.post(path, params=params, files={"file": (name, content, "application/pdf")})


def test_a_signed_pdf_gets_a_json_report(client: TestClient, documents: dict[str, Path]) -> None:
    response = upload(client, "/api/v1/verify", documents["good"].read_bytes())
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    report = response.json()  # type: ignore[attr-defined]
    assert report["indication"] == "TOTAL-PASSED"
    assert (report["signature_count"], report["valid_count"]) == (1, 1)
    assert report["document_name"] == "contract.pdf"
    signature = report["signatures"][0]
    assert signature["level"] == "B-B" and signature["personal_code"] == "49403136526"
    # B-B carries no revocation data: the service asked its own OCSP responder.
    assert signature["revocation"]["source"] == "OCSP response our trust services, asked in process"


def test_an_altered_pdf_fails_with_the_check_that_caught_it(
    client: TestClient, documents: dict[str, Path]
) -> None:
    report = upload(client, "/api/v1/verify", documents["altered"].read_bytes()).json()  # type: ignore[attr-defined]
    assert report["indication"] == "TOTAL-FAILED"
    signature = report["signatures"][0]
    assert (signature["sub_indication"], signature["caught_by"]) == ("HASH_FAILURE", ["integrity"])


@pytest.mark.parametrize(
    "path,params", [("/api/v1/verify", {"format": "pdf"}), ("/api/v1/verify/report.pdf", {})]
)
def test_the_sealed_pdf_report(
    client: TestClient,
    documents: dict[str, Path],
    nss_db: str,
    tmp_path: Path,
    path: str,
    params: dict[str, str],
) -> None:
    response = upload(client, path, documents["good"].read_bytes(), **params)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/pdf"  # type: ignore[attr-defined]
    sealed = tmp_path / "report.pdf"
    sealed.write_bytes(response.content)  # type: ignore[attr-defined]
    # Independent witnesses: pdfsig trusts the seal, pdftotext reads the verdict.
    lines = pdfsig(nss_db, sealed)[0]
    assert "Signature Validation: Signature is Valid." in lines
    assert any("QR Seal" in line for line in lines), lines
    text = subprocess.run(["pdftotext", str(sealed), "-"], capture_output=True, text=True, check=True).stdout
    assert "Signature validation report" in text and "TOTAL-PASSED" in text and "contract.pdf" in text
    # And the service validates its own seal at B-LTA.
    again = upload(client, "/api/v1/verify", response.content, name="report.pdf").json()  # type: ignore[attr-defined]
    assert again["indication"] == "TOTAL-PASSED", again
    assert again["signatures"][0]["level"] == "B-LTA"


@pytest.mark.parametrize(
    "content,status",
    [(b"not a pdf", 422), (b"", 422), (b"%PDF-1.7\n1 0 obj <<", 422)],
    ids=["garbage", "empty", "truncated"],
)
def test_bad_uploads_get_problem_details(client: TestClient, content: bytes, status: int) -> None:
    response = upload(client, "/api/v1/verify", content)
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert response.json()["type"].endswith("/unreadable-document")  # type: ignore[attr-defined]


def test_encrypted_pdf_is_refused(client: TestClient, tmp_path: Path) -> None:
    encrypted = make_pdf(tmp_path / "secret.pdf", password="secret")
    response = upload(client, "/api/v1/verify", encrypted.read_bytes())
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "encrypted" in response.json()["detail"]  # type: ignore[attr-defined]


def test_over_size_uploads_are_refused_while_streaming(client: TestClient) -> None:
    big = b"%PDF-1.7\n" + b"0" * (LIMIT + 1)
    response = upload(client, "/api/v1/verify", big)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert response.json()["type"].endswith("/document-too-large")  # type: ignore[attr-defined]

    # Chunked, no Content-Length: the limit holds as the bytes arrive.
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(LIMIT // 4096 + 2):
            yield b"0" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/v1/verify",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413


def test_malformed_requests(client: TestClient) -> None:
    assert (
        client.post(
            "/api/v1/verify", content=b"%PDF", headers={"content-type": "application/pdf"}
        ).status_code
        == 400
    )
    no_file = client.post("/api/v1/verify", files={"other": ("a.pdf", b"%PDF", "application/pdf")})
    assert no_file.status_code == 400 and "field 'file'" in no_file.json()["detail"]
    assert (
        client.post("/api/v1/verify", params={"format": "xml"}, files={"file": ("a", b"x")}).status_code
        == 422
    )


def test_the_pages_for_people(client: TestClient, documents: dict[str, Path]) -> None:
    form = client.get("/verify")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    page = client.post(
        "/verify", files={"file": ("contract.pdf", documents["good"].read_bytes(), "application/pdf")}
    )
    assert page.status_code == 200
    assert "The signatures are valid" in page.text and "<details>" in page.text
    assert page.text.index("The signatures are valid") < page.text.index("<details>")  # plain words first
    assert "Content-Security-Policy" in page.headers
    failed = client.post(
        "/verify", files={"file": ("x.pdf", documents["altered"].read_bytes(), "application/pdf")}
    )
    assert "did not pass" in failed.text and "HASH_FAILURE" in failed.text
    garbage = client.post("/verify", files={"file": ("x.pdf", b"garbage", "application/pdf")})
    assert garbage.status_code == 422 and "not a readable PDF" in garbage.text


def test_the_command_line(service_env: ServiceEnv, documents: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from api.cli import main

    # The installed command, once, end to end.
    good = service_env.run_eid("verify", str(documents["good"]), "--json", check=False)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["indication"] == "TOTAL-PASSED"
    assert "49403136526" not in good.stderr  # nothing personal in the logs
    runner = CliRunner()
    bad = runner.invoke(main, ["verify", str(documents["altered"])], env=service_env.env)
    assert bad.exit_code == 1 and "TOTAL-FAILED" in bad.output and "caught by: integrity" in bad.output
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"nothing")
    unreadable = runner.invoke(main, ["verify", str(garbage)], env=service_env.env)
    assert unreadable.exit_code == 1
    assert unreadable.output.startswith("error: ") and "not a readable PDF" in unreadable.output
    assert runner.invoke(main, ["verify", str(tmp_path / "missing.pdf")], env=service_env.env).exit_code == 2
