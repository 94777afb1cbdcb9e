"""``eid serve``'s app freezes the heap it starts with (``create_app(freeze_heap=True)``)."""

from __future__ import annotations

import gc
import warnings

from api.app import create_app
from tests.conftest import ServiceEnv

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_the_started_heap_is_left_out_of_full_collections(service_env: ServiceEnv) -> None:
    """After start-up the objects that exist (libraries, services) are frozen; the app
    still answers, and what it makes afterwards is collected as usual."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(service_env.settings, freeze_heap=True)) as client:
            frozen = gc.get_freeze_count()
            assert frozen > 10_000  # the libraries and the trust services, at the least
            assert client.get("/healthz").status_code == 200

            class Cycle:
                def __init__(self) -> None:
                    self.me = self

            Cycle()
            assert gc.collect() >= 1  # a new cycle is still found
            assert gc.get_freeze_count() <= frozen  # nothing frozen since; some freed by refcount
    finally:
        gc.unfreeze()


def test_apps_built_by_tests_do_not_freeze(service_env: ServiceEnv) -> None:
    gc.unfreeze()
    with TestClient(create_app(service_env.settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
