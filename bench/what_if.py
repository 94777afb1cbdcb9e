"""What-if experiment: the proposed speed-ups applied as monkeypatches, measured side by side.

Not part of ``make bench``. It serves the real app (``api.app.create_app``, same uvicorn
settings as ``eid serve``) several times, each with some of the changes proposed in
``docs/benchmarks.md`` patched in at start-up, and measures every variant against the
same bare ceiling, interleaved, in one run. Nothing in ``api/`` or ``keys/`` is edited;
the patches only exist inside the experiment's server processes. They mirror the current
code of ``api/deps.py``, ``api/routes/trust.py``, ``api/services.py`` and ``keys/ocsp.py``
and must be revisited if those change.

Patches (comma-separated per variant, variants separated by spaces):

* ``async-deps``: ``api.deps.get_services`` as ``async def`` (FastAPI runs a sync
  dependency in the thread pool: one thread hop per request just to read app.state);
* ``inline``: the trust routes call ``respond`` directly instead of ``run_in_threadpool``;
* ``prebuilt``: the status query built once with bind parameters, not per request;
* ``raw``: the status query as pre-compiled SQL on a pooled DBAPI connection;
* ``parse-memo``: nonce-free single requests: request bytes -> (CertID DER, serial) memo,
  so the cached path skips the asn1crypto parse (the status lookup still runs each time);
* ``stub`` (diagnostic, not a proposal): ``respond`` returns the first answer it gave for
  the same bytes, so what remains is the cost of everything around the responders.

    .venv/bin/python bench/what_if.py --duration 5 --rounds 3 \\
        none async-deps async-deps,inline async-deps,inline,prebuilt,parse-memo
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

PATCHES = ("none", "async-deps", "inline", "prebuilt", "raw", "parse-memo", "stub")


def _apply(patches: set[str]) -> None:  # noqa: C901 - one block per patch
    if "async-deps" in patches:
        from fastapi import Request

        import api.deps

        async def get_services(request: Request) -> Any:
            return request.app.state.services

        get_services.__annotations__ = {"request": Request}  # resolved, not a string
        api.deps.get_services = get_services  # before api.routes imports it

    from api.routes import trust

    if "inline" in patches:

        async def inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        trust.run_in_threadpool = inline  # type: ignore[assignment]

    if "prebuilt" in patches or "raw" in patches:
        from sqlalchemy import bindparam, select

        from api.services import Services
        from keys.models import CertificateRecord
        from keys.ocsp import StatusRow

        table = CertificateRecord.__table__  # type: ignore[attr-defined]
        query = select(table.c.state, table.c.revoked_at, table.c.revocation_reason, table.c.revision).where(
            table.c.serial == bindparam("serial"), table.c.issuer == bindparam("issuer")
        )
        compiled: dict[str, Any] = {}

        def status_prebuilt(self: Services, serial: str) -> StatusRow | None:
            with self.engine.connect() as connection:
                row = connection.execute(
                    query, {"serial": serial, "issuer": self.pki.citizen_ca.name}
                ).first()
            if row is None:
                return None
            return StatusRow(state=row[0], revoked_at=row[1], reason=row[2], revision=row[3])

        def status_raw(self: Services, serial: str) -> StatusRow | None:
            # Only for measuring: revoked_at comes back as the driver's type, not a datetime.
            if not compiled:
                c = query.compile(dialect=self.engine.dialect)
                compiled.update(sql=str(c), positional=c.positional, order=c.positiontup)
            params = {"serial": serial, "issuer": self.pki.citizen_ca.name}
            args = tuple(params[n] for n in compiled["order"]) if compiled["positional"] else params
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(compiled["sql"], args)
                row = cursor.fetchone()
                cursor.close()
            finally:
                connection.close()
            if row is None:
                return None
            return StatusRow(state=row[0], revoked_at=row[1], reason=row[2], revision=row[3])

        Services._certificate_status = status_raw if "raw" in patches else status_prebuilt  # type: ignore[method-assign]

    if "stub" in patches:
        from keys.ocsp import OcspResponder
        from keys.tsa import TimeStampAuthority

        for cls in (OcspResponder, TimeStampAuthority):

            def memoised(real: Any) -> Any:
                answers: dict[bytes, Any] = {}

                def respond(self: Any, request_der: bytes, *, now: Any) -> Any:
                    if request_der not in answers:
                        answers[request_der] = real(self, request_der, now=now)
                    return answers[request_der]

                return respond

            cls.respond = memoised(cls.respond)  # type: ignore[method-assign]

    if "parse-memo" in patches:
        from asn1crypto import ocsp

        from keys.ocsp import OcspAnswer, OcspResponder

        original = OcspResponder.respond

        def respond(self: OcspResponder, request_der: bytes, *, now: Any) -> OcspAnswer:
            memo: dict[bytes, tuple[bytes, str]] = self.__dict__.setdefault("_parsed", {})
            hit = memo.get(request_der)
            if hit is not None:
                cert_id_der, serial = hit
                row = self._lookup(serial)
                key = (cert_id_der, row.revision if row else -1, row.state if row else "")
                with self._lock:
                    cached = self._cache.get(key)
                if (
                    cached is not None
                    and cached.this_update
                    and now < cached.this_update + self._validity / 2
                ):
                    return cached
            answer = original(self, request_der, now=now)
            if hit is None and answer.cacheable and answer.status == "successful" and len(memo) < 10_000:
                items = ocsp.OCSPRequest.load(request_der)["tbs_request"]["request_list"]
                if len(items) == 1:
                    cert_id = items[0]["req_cert"]
                    memo[request_der] = (cert_id.dump(), format(cert_id["serial_number"].native, "x"))
            return answer

        OcspResponder.respond = respond  # type: ignore[method-assign]


def serve(port: int, patches: set[str]) -> None:
    _apply(patches)
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=port, workers=1, proxy_headers=False, log_level="info")


def _checker(url: str, body: bytes, kind: str) -> Any:
    """A check that the variant still answers "good" / "granted" (patches must not break answers)."""
    import _harness as h
    import httpx
    from asn1crypto import ocsp, tsp

    def check() -> None:
        response = httpx.post(url, content=body, headers={"content-type": kind}, timeout=10)
        if response.status_code != 200:
            raise h.BenchError(f"{url}: HTTP {response.status_code} {response.text[:300]}")
        if kind == "application/ocsp-request":
            parsed = ocsp.OCSPResponse.load(response.content)
            data = parsed.basic_ocsp_response["tbs_response_data"]
            ok = [r["cert_status"].name for r in data["responses"]] == ["good"]
        else:
            ok = tsp.TimeStampResp.load(response.content)["status"]["status"].native == "granted"
        if response.status_code != 200 or not ok:
            raise h.BenchError(f"{url}: wrong answer from a patched server: {response.status_code}")

    return check


def main() -> int:
    import _harness as h

    parser = h.arguments(__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help=f"comma-separated patches from {', '.join(PATCHES)}")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, set(args.variants[0].split(",")) - {"none"})
        return 0
    for variant in args.variants:
        unknown = set(variant.split(",")) - set(PATCHES)
        if unknown:
            parser.error(f"unknown patch {', '.join(sorted(unknown))}")
    load = h.load_from(args)
    try:
        with h.environment(args.keep) as env:
            h.stop(env.eid)
            files = env.service.files
            plain, nonce, query = (env.workdir / n for n in ("plain.der", "nonce.der", "query.tsq"))
            ocsp_base = [
                "openssl",
                "ocsp",
                "-issuer",
                str(files["citizen-ca"]),
                "-cert",
                str(files["citizen"]),
            ]
            h.run([*ocsp_base, "-no_nonce", "-reqout", str(plain)])
            h.run([*ocsp_base, "-reqout", str(nonce)])
            h.run(["openssl", "ts", "-query", "-digest", "ab" * 32, "-sha256", "-cert", "-out", str(query)])
            ocsp_type, tsa_type = "application/ocsp-request", "application/timestamp-query"
            items = [
                h.Scenario(
                    "bare POST",
                    env.bare,
                    env.bare.url + "/bare",
                    h.post_script(env.workdir, plain, ocsp_type),
                )
            ]
            for i, variant in enumerate(args.variants):
                port = h.free_port()
                argv = [sys.executable, __file__, "--serve", str(port), variant]
                server = h._start(
                    f"variant {variant}", argv, env.service.env, port, env.workdir / f"v{i}.log"
                )
                for label, path, body, kind in (
                    ("OCSP no nonce", "/ocsp", plain, ocsp_type),
                    ("OCSP nonce", "/ocsp", nonce, ocsp_type),
                    ("TSA", "/tsa", query, tsa_type),
                ):
                    items.append(
                        h.Scenario(
                            f"[{variant}] {label}",
                            server,
                            server.url + path,
                            h.post_script(env.workdir, body, kind),
                            ceiling="bare POST",
                            check=_checker(server.url + path, body.read_bytes(), kind),
                        )
                    )
            h.measure(items, load, h.log)
            text, _ok = h.table("What if: proposed changes, as monkeypatches", items, load)
    except h.BenchError as exc:
        print(f"experiment failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
