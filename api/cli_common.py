"""What every ``eid`` command shares: readable errors, settings, a database session, output.

Errors print one line on stderr and exit with status 1 (2 for usage errors, from click);
never a traceback. Commands that print data for scripts take ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from pydantic import ValidationError
from sqlmodel import Session

from keys.errors import ServiceError

from . import db
from .services import open_keystore
from .settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one readable line."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            fail(str(exc))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                for error in exc.errors()
            )
            fail(f"invalid configuration: {problems}")
        raise AssertionError("unreachable")

    return wrapper


def load_settings() -> Settings:
    return Settings()


@contextmanager
def service_session() -> Iterator[tuple[Settings, Session, Any]]:
    settings = load_settings()
    engine = db.make_engine(settings.resolved_database_url)
    db.upgrade(engine)
    keystore = open_keystore(settings)
    try:
        with Session(engine) as session:
            yield settings, session, keystore
    finally:
        keystore.close()
        engine.dispose()


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text(data))
