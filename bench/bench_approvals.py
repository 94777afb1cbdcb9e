"""Approval answers per second against ``eid serve`` on loopback, beside a bare FastAPI ceiling.

The measured request is the citizen app's answer to a login (``auth``) request
(docs/protocol.md), as ``eid-app`` sends it:

    POST /api/v1/app/requests/{id}
    {"decision": "approve", "certificate": "<b64 DER>", "signature": "<b64>"}

for which the server reads the request, checks the certificate (issued by our Citizen
CA, the request's citizen's, valid, an authentication certificate), the signature over
the request's hash (which is what authenticates an approval), the certificate's status
with our OCSP responder (a real OCSP request and a verified signed response, in
process), and completes the request with one conditional update.

The same answer with a request token (``Authorization: EID-App <ES256 JWS signed with the
device key>``: signature, audience, method, URL, time, single-use ``jti``), which the
service still accepts from apps that send one, is measured too, for information.

Every answer consumes its request and every token's ``jti`` is single use, so before each
wrk run (warm-up too) the script creates fresh pending requests straight in the database
(a bulk insert of ``ApprovalRequest`` rows with the fields ``identity.approvals.open_request``
sets; creating them is set-up, not measured: the issue asks for the server-side checks)
and writes one line per request (id, token or nothing, body) that wrk's Lua walks in order.

Scenarios, measured in the same run:

* bare POST (ceiling): ``bench/bare_app.py`` reading the same body sizes;
* approval answer: the request above, answered ``200 {"state":"completed"}``;
* approval answer with a request token (info).

Checks: before and after, one request opened with ``open_request`` is answered 200
``completed`` and its replay 409; with a token, a replay of the same token is 401 and a
replay with a fresh token 409. After every run, the requests of that run are counted in
the database by state: none may be ``failed`` (or anything but ``completed``/``pending``),
and the completed ones must be at least wrk's count and at most the number of requests
wrk sent (the difference is the requests still in flight when wrk stopped, at most one
per connection). Goal: the answer as ``eid-app`` sends it at least 25% of the ceiling.

    .venv/bin/python bench/bench_approvals.py [--duration 10] [--connections 16] [--rounds 1]
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _citizen_app as ca
import _harness as h
import httpx
import sqlmodel
from sqlalchemy import Engine, func, insert, select

GOAL = 0.25
JSON = "application/json"
ANSWER_PATH = "/api/v1/app/requests/"
EXPECT = '"state":"completed"'
INITIAL_RATE = 1500.0
"""Requests per second assumed before the first run (only sizes the first batch)."""
MARGIN = 2.0
"""Pre-generated requests per run: this many times the fastest rate seen so far."""
CEILING_LINES = 2000


@dataclass
class Batch:
    number: int
    tag: str
    public_ids: list[str]


@dataclass
class ApprovalLoad:
    """Fresh pending requests and their answers, one batch per wrk run."""

    env: h.Environment
    app: ca.CitizenApp
    engine: Engine
    lines_file: Path
    with_token: bool
    """Answers with a request token (otherwise as ``eid-app`` sends them: none)."""
    rate: float = INITIAL_RATE
    batch: Batch | None = None
    batches: int = 0
    in_flight: list[int] = field(default_factory=list)

    def answers(self, count: int, tag: str) -> tuple[list[dict[str, object]], list[tuple[str, str, str]]]:
        """``count`` pending ``auth`` requests (rows) and the app's answer to each (lines)."""
        from identity import _secrets
        from identity.approvals import MAX_LIFETIME, ApprovalKind, ApprovalState, verification_code
        from keys.models import utcnow

        rows: list[dict[str, object]] = []
        lines: list[tuple[str, str, str]] = []
        now = utcnow()
        issued = int(time.time())
        for _ in range(count):
            digest = os.urandom(32)  # start_app_login signs SHA-256 of a random value: same shape
            public_id = _secrets.public_id("ar")
            rows.append(
                {
                    "public_id": public_id,
                    "citizen_id": self.app.citizen_id,
                    "kind": ApprovalKind.AUTH.value,
                    "hash": digest,
                    "hash_algorithm": "sha256",
                    "display_text": tag,
                    "verification_code": verification_code(digest),
                    "binding_hash": _secrets.digest(_secrets.token()),
                    "state": ApprovalState.PENDING.value,
                    "created_at": now,
                    "expires_at": now + MAX_LIFETIME,
                }
            )
            path = ANSWER_PATH + public_id
            authorization = "EID-App " + self.app.token("POST", path, now=issued) if self.with_token else ""
            lines.append((path, authorization, self.app.approval_body(digest)))
        return rows, lines

    def prepare(self, seconds: int) -> None:
        from sqlmodel import Session

        from identity.models import ApprovalRequest

        self.batches += 1
        count = int(seconds * self.rate * MARGIN) + 500
        tag = f"Log in to benchmark run {self.batches}{' (token)' if self.with_token else ''}"
        started = time.monotonic()
        rows, lines = self.answers(count, tag)
        with Session(self.engine) as session:
            session.execute(insert(ApprovalRequest), rows)
            session.commit()
        h.write_lines(self.lines_file, lines)
        self.batch = Batch(self.batches, tag, [str(r["public_id"]) for r in rows])
        h.log(f"    {count} pending requests and answers ready in {time.monotonic() - started:.1f}s")

    def verify(self, result: h.WrkResult) -> None:
        """Count this run's requests by state; compare with what wrk sent and counted."""
        from identity.models import ApprovalRequest

        assert self.batch is not None
        table = ApprovalRequest.__table__  # type: ignore[attr-defined]
        tag = self.batch.tag

        def read() -> tuple[dict[str, int], frozenset[str]]:
            with self.engine.connect() as connection:
                states = dict(
                    connection.execute(  # type: ignore[arg-type]
                        select(table.c.state, func.count())
                        .where(table.c.display_text == tag)
                        .group_by(table.c.state)
                    ).all()
                )
                completed_ids = frozenset(
                    connection.execute(
                        select(table.c.public_id).where(
                            table.c.display_text == tag, table.c.state == "completed"
                        )
                    ).scalars()
                )
            return states, completed_ids

        states, completed_ids = h.settled(read)
        sent = min(result.walk.get("sent", 0), len(self.batch.public_ids))
        completed = states.get("completed", 0)
        others = {state: n for state, n in states.items() if state not in ("completed", "pending")}
        problems = []
        if others:
            problems.append(f"requests in other states: {others}")
        if not completed_ids <= set(self.batch.public_ids[:sent]):
            problems.append("requests wrk never sent are completed")
        if not result.requests <= completed <= sent:
            problems.append(f"{completed} completed, wrk counted {result.requests} answers and sent {sent}")
        if problems:
            raise h.BenchError(f"approval run {self.batch.number}: " + "; ".join(problems))
        self.in_flight.append(completed - result.requests)
        self.rate = max(self.rate if self.batches > 1 else 0.0, result.requests_per_second)
        h.log(
            f"    database: {completed} completed = {result.requests} answers counted by wrk "
            f"+ {completed - result.requests} in flight at the end (sent {sent}); none failed"
        )


def _check(env: h.Environment, app: ca.CitizenApp, *, with_token: bool) -> Callable[[], None]:
    """One request opened by the domain function: answered once (200), replays refused."""

    def check() -> None:
        from identity import approvals
        from identity.models import ApprovalRequest, Citizen
        from keys.dbapi import Tx

        digest = os.urandom(32)
        with ca.database(env.service) as session:
            citizen = session.get(Citizen, app.citizen_id)
            assert citizen is not None
            row = approvals.open_request(
                Tx(session),
                citizen=citizen,
                kind=approvals.ApprovalKind.AUTH,
                hash_value=digest,
                hash_algorithm="sha256",
                display_text="Log in to the benchmark check",
                binding="bench-check",
            )
            session.commit()  # open_request writes on the caller's transaction
            public_id = row.public_id
        path = ANSWER_PATH + public_id
        body = app.approval_body(digest)
        with httpx.Client(base_url=env.eid.url, timeout=10) as http:

            def post(token: str | None) -> httpx.Response:
                headers = {"Content-Type": JSON} | ({"Authorization": f"EID-App {token}"} if token else {})
                return http.post(path, content=body, headers=headers)

            token = app.token("POST", path) if with_token else None
            first = post(token)
            if first.status_code != 200 or first.json() != {"id": public_id, "state": "completed"}:
                raise h.BenchError(f"approval answer: HTTP {first.status_code} {first.text}")
            if token is not None:
                same_token = post(token)
                if same_token.status_code != 401:
                    raise h.BenchError(f"replayed request token: HTTP {same_token.status_code}, expected 401")
            replay = post(app.token("POST", path) if with_token else None)
            if replay.status_code != 409 or "already completed" not in replay.text:
                raise h.BenchError(f"replayed answer: HTTP {replay.status_code} {replay.text}, expected 409")
        with ca.database(env.service) as session:
            stored = session.exec(
                sqlmodel.select(ApprovalRequest).where(ApprovalRequest.public_id == public_id)
            ).one()
            if stored.state != "completed" or stored.signature is None or not stored.certificate_serial:
                raise h.BenchError(f"approval check: stored state {stored.state}")

    return check


def scenarios(env: h.Environment, app: ca.CitizenApp) -> tuple[list[h.Scenario], list[ApprovalLoad]]:
    engine = ca.engine(env.service)
    loads = [
        ApprovalLoad(
            env=env,
            app=app,
            engine=engine,
            lines_file=env.workdir / f"approvals{'-token' if with_token else ''}.lines",
            with_token=with_token,
        )
        for with_token in (False, True)
    ]
    # The ceiling gets lines of the same shape as the goal's (same body sizes), sent to /bare.
    _rows, sample = loads[0].answers(CEILING_LINES, "ceiling sample (never inserted)")
    bare_lines = env.workdir / "approvals-bare.lines"
    h.write_lines(bare_lines, sample)
    bare = h.Scenario(
        "bare POST",
        env.bare,
        env.bare.url + "/bare",
        script=h.walk_script(
            env.workdir / "approvals-bare.lua", bare_lines, JSON, fixed_path="/bare", wrap=True
        ),
    )
    answers = [
        h.Scenario(
            name,
            env.eid,
            env.eid.url + "/",
            script=h.walk_script(
                env.workdir / f"{load.lines_file.stem}.lua", load.lines_file, JSON, expect=EXPECT
            ),
            ceiling="bare POST",
            goal=goal,
            check=_check(env, app, with_token=load.with_token),
            prepare=load.prepare,
            verify=load.verify,
        )
        for load, name, goal in zip(
            loads,
            (
                "approval answer as eid-app sends it (chain, OCSP, signature)",
                "the same with a request token (token, jti, chain, OCSP, signature)",
            ),
            (GOAL, None),
            strict=True,
        )
    ]
    return [bare, *answers], loads


def bench(env: h.Environment, load: h.Load) -> tuple[str, bool]:
    if load.threads != 1:
        h.log("approval benchmark: wrk -t1 (one Lua state walks the single-use requests)")
        load = dataclasses.replace(load, threads=1)
    h.log("approval benchmark: enrolling a citizen over HTTP ...")
    (app,) = ca.enrol(env.service, env.eid.url, 1)
    items, loads = scenarios(env, app)
    try:
        h.measure(items, load, h.log)
    finally:
        loads[0].engine.dispose()
    text, ok = h.table("Approval answers per second (server-side checks)", items, load)
    in_flight = [n for one in loads for n in one.in_flight]
    text += (
        f"\n\nEvery run checked in the database: completed requests = wrk's count + "
        f"{h.span(in_flight)} still in flight when wrk stopped; "
        f"none failed. Latency of the approval answer at -c{load.connections}: "
        + h.latency_text(items[1].results)
        + f" (with a token: {h.latency_text(items[2].results)})"
        + f". Server (eid serve): {h.cpu_text(items[1].results)} (with a token: {h.cpu_text(items[2].results)});"
        + f" bare app: {h.cpu_text(items[0].results)}."
    )
    return text, ok


def main() -> int:
    args = h.arguments(__doc__.splitlines()[0]).parse_args()
    load = h.load_from(args)
    return h.with_service(args.keep, lambda env: bench(env, load))


if __name__ == "__main__":
    sys.exit(main())
