"""Answers built inside the route, for the busiest ``def`` routes."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as JSON. When a ``def`` route returns a model, FastAPI validates it again
    in a second hop through the thread pool; a route that returns this answer skips that
    (its decorator's ``response_model`` still documents the answer in the OpenAPI schema)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
