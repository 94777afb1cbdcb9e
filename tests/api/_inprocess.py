"""The app in process (Starlette's TestClient) on the session's data directory, with
settings changed per test: cheaper than a server process for middleware behaviour."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x would rather use "httpx2"; the httpx we have works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from api.app import create_app
from tests.conftest import ServiceEnv


@contextmanager
def client_for(env: ServiceEnv, *, peer: str = "203.0.113.10", **sections: Any) -> Iterator[TestClient]:
    """A client whose requests come from ``peer``; ``sections`` replace settings sections
    (``rate_limits={"enabled": True, ...}``), validated as the environment would be."""
    settings = env.settings.model_validate(env.settings.model_dump() | sections)
    with TestClient(create_app(settings), client=(peer, 40000), base_url=env.settings.public_url) as client:
        yield client
