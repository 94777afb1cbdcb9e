"""Time-stamps per second against ``eid serve`` on loopback, beside a bare FastAPI ceiling.

Scenarios, measured in the same run:

* bare POST (ceiling): ``bench/bare_app.py`` reading the body and answering fixed bytes;
* TSA POST: ``POST /tsa`` with an ``openssl ts -query -sha256 -cert`` request (every
  answer is a fresh token: new serial, new time, new signature).

One answer is checked with ``openssl ts -verify`` before and after the load, and wrk
must see no non-2xx answers, so errors are never benchmarked. Goal: TSA at least 25%
of the ceiling.

    .venv/bin/python bench/bench_tsa.py [--duration 10] [--connections 16] [--rounds 1]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import _harness as h
import httpx

GOAL = 0.25
TSA_QUERY = "application/timestamp-query"


def _query(env: h.Environment) -> tuple[Path, Path]:
    data = env.workdir / "document.txt"
    data.write_text("Kõik inimesed sünnivad vabadena ja võrdsetena oma väärikuselt ja õigustelt.\n")
    query = env.workdir / "tsa-query.tsq"
    h.run(["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)])
    return data, query


def _check(env: h.Environment, data: Path, query: Path) -> Callable[[], None]:
    def check() -> None:
        response = httpx.post(
            env.eid.url + "/tsa", content=query.read_bytes(), headers={"content-type": TSA_QUERY}, timeout=10
        )
        kind = response.headers.get("content-type")
        if response.status_code != 200 or kind != "application/timestamp-reply":
            raise h.BenchError(f"TSA: HTTP {response.status_code} {kind}")
        reply = env.workdir / "tsa-reply.tsr"
        reply.write_bytes(response.content)
        files = env.service.files
        for source in (["-data", str(data)], ["-queryfile", str(query)]):
            result = h.run(
                [
                    "openssl",
                    "ts",
                    "-verify",
                    *source,
                    "-in",
                    str(reply),
                    "-CAfile",
                    str(files["root"]),
                    "-untrusted",
                    str(files["tsa"]),
                ]
            )
            if "Verification: OK" not in result.stdout:
                raise h.BenchError(f"TSA: openssl ts -verify failed:\n{result.stdout}{result.stderr}")

    return check


def scenarios(env: h.Environment) -> list[h.Scenario]:
    data, query = _query(env)
    return [
        h.Scenario(
            "bare POST", env.bare, env.bare.url + "/bare", script=h.post_script(env.workdir, query, TSA_QUERY)
        ),
        h.Scenario(
            "TSA POST (signed each time)",
            env.eid,
            env.eid.url + "/tsa",
            script=h.post_script(env.workdir, query, TSA_QUERY),
            ceiling="bare POST",
            goal=GOAL,
            check=_check(env, data, query),
        ),
    ]


def bench(env: h.Environment, load: h.Load) -> tuple[str, bool]:
    h.log("TSA benchmark")
    items = scenarios(env)
    h.measure(items, load, h.log)
    return h.table("Time-stamps per second", items, load)


def main() -> int:
    args = h.arguments(__doc__.splitlines()[0]).parse_args()
    load = h.load_from(args)
    return h.with_service(args.keep, lambda env: bench(env, load))


if __name__ == "__main__":
    sys.exit(main())
