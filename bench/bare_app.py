"""The ceiling: a bare FastAPI app served exactly like ``eid serve`` serves the real one.

One POST endpoint that reads the whole body and answers fixed bytes, one GET endpoint
that answers fixed bytes. Same uvicorn settings as ``api/cli.py`` ``serve``: an import
string with ``factory=True``, 1 worker, ``proxy_headers=False``, ``log_level="info"``
(so access logging is on in both), and uvicorn's default loop and HTTP implementation.

    python bench/bare_app.py --port 8100
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Request, Response

_ANSWER = bytes(range(64)) * 8  # 512 fixed bytes, about the size of an OCSP response


def create_app() -> FastAPI:
    app = FastAPI(title="bare ceiling")

    @app.post("/bare")
    async def bare_post(request: Request) -> Response:
        await request.body()
        return Response(_ANSWER, media_type="application/octet-stream")

    @app.get("/bare/{rest:path}")
    async def bare_get(rest: str) -> Response:
        return Response(_ANSWER, media_type="application/octet-stream")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        "bare_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        proxy_headers=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
