"""The busiest routes, without FastAPI's parameter machinery.

For every request FastAPI resolves the endpoint's declared parameters (path, query,
headers, body) through pydantic, validates the returned model again, and
``request.url`` parses the whole URL once more. On the citizen app's answer that was
about a tenth of the request's CPU. A ``lean`` route is an ``async`` endpoint that takes
the ``Request`` and returns a ``Response``: FastAPI's routing, exception handlers and
body limits still apply, but the endpoint reads what it needs itself (``request.headers``,
``request_path``, the body with ``json_model``) and builds its own answer. Its parameters
and answer are documented in the OpenAPI schema by ``documented`` and ``response_model``
instead of by its signature, so the schema stays what a client sees.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

_Endpoint = TypeVar("_Endpoint", bound=Callable[[Request], Coroutine[Any, Any, Response]])


class LeanRoute(APIRoute):
    """A route whose endpoint is called with the request as it is (FastAPI's documented
    extension point, ``get_route_handler``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


def lean(
    router: APIRouter, path: str, *, method: str, **documentation: Any
) -> Callable[[_Endpoint], _Endpoint]:
    """Register ``async def endpoint(request) -> Response`` on ``router`` as a ``LeanRoute``;
    ``documentation`` is what ``router.get``/``router.post`` take (summary, response_model,
    status_code, openapi_extra ...), used for the schema only."""

    def register(endpoint: _Endpoint) -> _Endpoint:
        router.add_api_route(
            path, endpoint, methods=[method], route_class_override=LeanRoute, **documentation
        )
        return endpoint

    return register


def request_path(request: Request) -> str:
    """``request.url.path`` without building the URL: the scope's path with the three
    characters a URL cannot carry raw escaped, exactly as Starlette's ``URL`` does."""
    path: str = request.scope["path"]
    if "?" in path or "#" in path or "\\" in path:
        path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return path


_Body = TypeVar("_Body", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def json_model(request: Request, model: type[_Body]) -> _Body:
    """The body as ``model``, refused with a 422 as FastAPI refuses a body parameter: a
    body whose ``Content-Type`` is not JSON (``application/json`` or ``application/*+json``;
    a cross-site form cannot send one without the browser asking first), malformed JSON,
    or a value the model rejects."""
    body = await request.body()
    if not _is_json(request.headers.get("content-type")):
        raise RequestValidationError(
            [
                {
                    "type": "content_type",
                    "loc": ("body",),
                    "msg": "the body must be JSON (Content-Type: application/json)",
                    "input": None,
                }
            ]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def with_cookies(response: Response, cookie_jar: Response) -> Response:
    """``response`` with the cookies set on ``cookie_jar`` (what FastAPI does with the
    temporary ``response`` parameter of an endpoint, done here by the endpoint)."""
    response.raw_headers.extend(item for item in cookie_jar.raw_headers if item[0] == b"set-cookie")
    return response


def parameter(name: str, location: str, description: str) -> dict[str, Any]:
    """One OpenAPI parameter of a lean route (``location``: path, query or header), a string;
    required in the path, optional elsewhere."""
    return {
        "name": name,
        "in": location,
        "required": location == "path",
        "schema": {"type": "string"},
        "description": description,
    }


def documented(*parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``openapi_extra`` for a lean route: its parameters, and any other operation fields."""
    return {"parameters": list(parameters), **extra} if parameters else extra


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``requestBody`` of a lean route that reads ``model`` as JSON."""
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Validation Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
    }
}
"""``responses`` of a lean route that answers a malformed body as FastAPI would."""
