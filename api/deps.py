"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from .services import Services


async def get_services(request: Request) -> Services:
    # async: a plain def dependency would cost a thread-pool hop on every request.
    services: Services = request.app.state.services
    return services
