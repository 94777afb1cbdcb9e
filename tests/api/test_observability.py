"""Metrics, request ids and logs, against a real ``eid serve`` with two worker processes
(Prometheus multiprocess mode), and the masking filter on its own."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import logs
from api.settings import LoggingSettings
from tests import openssl
from tests.conftest import EID, ServiceEnv, free_port, issue_citizen, wait_until_serving
from tests.identity.test_login_with_app import fresh_code


@dataclass
class LoggedServer:
    url: str
    log: Path
    metrics: Path


@pytest.fixture(scope="module")
def logged_server(
    service_env: ServiceEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoggedServer]:
    """The session's data directory served by two workers, JSON logs to a file."""
    folder = tmp_path_factory.mktemp("observed")
    (folder / "metrics").mkdir()
    # A leftover of an earlier run, which ``eid serve`` must clear before the workers start.
    (folder / "metrics" / "counter_12345.db").write_bytes(b"stale")
    port = free_port()
    env = service_env.env | {
        "EID_LOGGING__FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
    }
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [EID, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(process, url, log_path)
        try:
            yield LoggedServer(url=url, log=log_path, metrics=folder / "metrics")
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _access_lines(server: LoggedServer, *request_ids: str) -> dict[str, dict[str, object]]:
    """The access log lines by request id, once those of ``request_ids`` are written (a
    worker logs a request just after its response has gone out)."""
    deadline = time.monotonic() + 15
    while True:
        lines = [
            json.loads(line)
            for line in server.log.read_text(encoding="utf-8").splitlines()
            if line.startswith("{") and line.endswith("}")
        ]
        found = {str(line.get("request_id")): line for line in lines if line.get("logger") == "eid.access"}
        if set(request_ids) <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_requests_are_counted_across_workers(logged_server: LoggedServer) -> None:
    assert not (logged_server.metrics / "counter_12345.db").exists()
    before = httpx.get(logged_server.url + "/metrics").text
    for _ in range(12):
        assert httpx.get(logged_server.url + "/healthz").status_code == 200
    assert httpx.get(logged_server.url + "/api/v1/signing/nope").status_code == 401
    after = httpx.get(logged_server.url + "/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    # Two processes answered; the multiprocess collector adds their files up.
    assert _metric(after.text, "eid_http_requests_total", **labels) - _metric(
        before, "eid_http_requests_total", **labels
    ) == pytest.approx(12)
    # The route template, never the raw path with its session id.
    assert 'route="/api/v1/signing/{session_id}"' in after.text and "/nope" not in after.text
    assert (
        _metric(after.text, "eid_http_request_duration_seconds_count", method="GET", route="/healthz") >= 12
    )


def test_ocsp_and_tsa_answers_are_counted(
    logged_server: LoggedServer, service_env: ServiceEnv, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    before = httpx.get(logged_server.url + "/metrics").text
    cert = tmp_path / "citizen.pem"
    cert.write_bytes(issue_citizen(service_env).pem)
    assert f"{cert}: good" in openssl.ocsp(logged_server.url, pem_files, cert)
    document = tmp_path / "doc.txt"
    document.write_text("to be time-stamped")
    query = subprocess.run(
        ["openssl", "ts", "-query", "-data", str(document), "-sha256", "-cert"],
        capture_output=True,
        check=True,
    ).stdout
    answer = httpx.post(
        logged_server.url + "/tsa", content=query, headers={"content-type": "application/timestamp-query"}
    )
    assert answer.status_code == 200
    (tmp_path / "reply.tsr").write_bytes(answer.content)
    status = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Granted" in status
    after = httpx.get(logged_server.url + "/metrics").text
    assert _metric(after, "eid_ocsp_responses_total") - _metric(before, "eid_ocsp_responses_total") == 1
    assert _metric(after, "eid_tsa_responses_total") - _metric(before, "eid_tsa_responses_total") == 1


def test_request_ids_and_access_log_without_personal_codes(logged_server: LoggedServer) -> None:
    code = fresh_code()
    given = httpx.get(
        f"{logged_server.url}/api/v1/admin/citizens/EE/{code}",
        params={"who": f"PNOEE-{code}", "sub": f"EE{code}"},
        headers={"X-Request-ID": "trace-0001-abcd"},
    )
    assert given.status_code == 401
    assert given.headers["x-request-id"] == "trace-0001-abcd"
    started = httpx.post(
        logged_server.url + "/api/v1/auth/app",
        json={"personal_code": code},
        headers={"X-Request-ID": "bad id with spaces"},
    )
    generated = started.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    login = httpx.get(logged_server.url + f"/login?login_hint={code}", headers={"X-Request-ID": code})

    by_id = _access_lines(logged_server, "trace-0001-abcd", generated, logs.MASK)
    text = logged_server.log.read_text(encoding="utf-8")
    assert code not in text
    assert code[:7] + "****" not in text  # masked whole, not partly
    line = by_id["trace-0001-abcd"]
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/admin/citizens/{country}/{id_code}"
    assert line["status"] == 401
    assert isinstance(line["duration_ms"], float | int)
    assert line["path"] == "/api/v1/admin/citizens/EE/" + logs.MASK
    assert by_id[generated]["route"] == "/api/v1/auth/app"
    # A request id that is itself a personal code is echoed to its sender, masked in the log.
    assert login.headers["x-request-id"] == code
    assert by_id[logs.MASK]["route"] == "/login"


def _capture(settings: LoggingSettings) -> tuple[logging.Logger, io.StringIO]:
    """A logger wired like ``eid serve`` wires the process, writing to a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    config = logs.config(settings)
    handler.addFilter(logs.MaskPersonalCodes())
    handler.setFormatter(
        logs.JsonFormatter() if config["handlers"]["default"]["formatter"] == "json" else logs.TextFormatter()
    )
    logger = logging.getLogger(f"tests.masking.{settings.format}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger, buffer


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_masking_covers_message_args_extras_and_tracebacks(fmt: str) -> None:
    logger, buffer = _capture(LoggingSettings(format=fmt))  # type: ignore[arg-type]
    code = "38001085718"
    token = logs.request_id.set("req-12345678")
    try:
        logger.info("login started for %s", code)
        logger.info(f"subject EE{code} and PNOEE-{code} in the message")
        logger.info("a dict %s", {"personal_code": code}, extra={"path": f"/citizens/EE/{code}"})
        try:
            raise ValueError(f"no citizen {code}")
        except ValueError:
            logger.exception("lookup failed")
    finally:
        logs.request_id.reset(token)
    output = buffer.getvalue()
    assert code not in output
    assert output.count(logs.MASK) >= 6
    assert "PNO**-" in output
    if fmt == "json":
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert [r["request_id"] for r in records] == ["req-12345678"] * 4
        assert records[2]["path"] == "/citizens/EE/" + logs.MASK
        assert "ValueError" in records[3]["exception"]
    else:
        assert "[req-12345678]" in output and "ValueError" in output


def test_other_numbers_are_left_alone() -> None:
    # Longer digit runs (timestamps, serials) are no personal codes.
    assert logs.mask("ts=1795383364219 serial=012345678901234") == "ts=1795383364219 serial=012345678901234"
    assert logs.mask("EE38001085718,49403136526") == f"EE{logs.MASK},{logs.MASK}"


def test_log_format_setting_reaches_the_cli_config() -> None:
    # ``eid serve`` hands this dict to uvicorn; it must be one logging accepts as is.
    for fmt in ("json", "text"):
        config = logs.config(LoggingSettings(format=fmt))  # type: ignore[arg-type]
        assert config["handlers"]["default"]["formatter"] == fmt
        assert config["handlers"]["default"]["filters"] == ["mask"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EID_")} | {"EID_LOGGING__FORMAT": "text"}
    probe = (
        "import logging, logging.config; from api import logs; from api.settings import Settings; "
        "logging.config.dictConfig(logs.config(Settings(_env_file=None).logging)); "
        "logging.getLogger('eid.probe').warning('code %s', '38001085718')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert "WARNING eid.probe code " + logs.MASK in result.stderr
    assert "38001085718" not in result.stderr


# The pattern ``mask`` must agree with: an 11-digit run starting 1-8, alone among digits.
_REFERENCE = re.compile(r"(?<![0-9])[1-8][0-9]{10}(?![0-9])")


def _reference_mask(text: str) -> str:
    return _REFERENCE.sub(logs.MASK, re.sub(r"PNO[A-Z]{2}-[0-9A-Za-z-]+", "PNO**-" + logs.MASK, text))


_PIECES = st.sampled_from(
    ["38001085718", "49403136526", "98001085718", "012345678901", "1234567890", "PNOEE-", "PNOLV-", "EE"]
    + ["7", "0", " ", "-", "\n", "\x00", "é", "٣", "\udcff", '"', "a"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join) | st.text(max_size=60))
def test_mask_finds_exactly_what_the_one_pattern_finds(text: str) -> None:
    assert logs.mask(text) == _reference_mask(text)


def test_json_time_is_the_isoformat_of_the_record() -> None:
    from datetime import UTC, datetime

    for created in (0.0, 1795383364.219, 1795383364.0004, 1795383365.5, 1800000000.999):
        record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        entry = json.loads(logs.JsonFormatter().format(record))
        expected = datetime.fromtimestamp(int(created), UTC).isoformat(timespec="seconds")
        assert entry["time"] == expected.replace("+00:00", f".{int(record.msecs):03d}+00:00")
