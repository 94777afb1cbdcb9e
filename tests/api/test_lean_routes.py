"""Lean routes (``api/routes/_lean.py``) answer bad input as FastAPI's parameter handling
did, and the OpenAPI schema still describes their parameters and bodies."""

from __future__ import annotations

import json

import pytest

from tests.api._inprocess import client_for
from tests.conftest import ServiceEnv

START = {"personal_code": "38001085718"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", json.dumps(START)),  # what a cross-site form can send without asking first
        ("application/x-www-form-urlencoded", "personal_code=38001085718"),
        (None, json.dumps(START)),
        ("application/json", "{not json"),
        ("application/json", json.dumps({"personal_code": ""})),
        ("application/json", json.dumps({**START, "extra": 1})),
    ],
)
def test_json_bodies_are_refused_with_a_422_as_fastapi_refuses_them(
    service_env: ServiceEnv, content_type: str | None, body: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with client_for(service_env) as client:
        for path in ("/api/v1/auth/app", "/api/v1/app/requests/ar-unknown"):
            answer = client.post(path, content=body.encode(), headers=headers)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["detail"], answer.text


def test_a_json_subtype_is_read_as_json(service_env: ServiceEnv) -> None:
    """``application/*+json`` is read like ``application/json``: both get the same answer
    (no citizen has that code in this environment)."""
    with client_for(service_env) as client:
        plain = client.post("/api/v1/auth/app", json=START)
        subtype = client.post(
            "/api/v1/auth/app", content=json.dumps(START), headers={"content-type": "application/vnd.x+json"}
        )
    assert plain.status_code == subtype.status_code == 404, (plain.text, subtype.text)
    assert subtype.json()["type"].endswith("/citizen-not-found")
    assert subtype.json() == plain.json()


def test_the_schema_describes_the_lean_routes(service_env: ServiceEnv) -> None:
    with client_for(service_env) as client:
        schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/api/v1/app/requests/{request_id}"]["post"]
    assert {(p["name"], p["in"]) for p in answer["parameters"]} == {
        ("request_id", "path"),
        ("Authorization", "header"),
    }
    assert "decision" in answer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"200", "422"} <= set(answer["responses"])
    start = schema["paths"]["/api/v1/auth/app"]["post"]
    assert "201" in start["responses"] and "422" in start["responses"]
    resume = schema["paths"]["/oauth/authorize/resume"]["get"]
    assert [(p["name"], p["in"]) for p in resume["parameters"]] == [("request", "query")]
    ocsp = schema["paths"]["/ocsp/{encoded}"]["get"]
    assert [(p["name"], p["in"]) for p in ocsp["parameters"]] == [("encoded", "path")]
