"""Approval answers per second against ``eid serve`` on loopback, beside a bare FastAPI ceiling.

The measured request is the citizen app's answer to a login (``auth``) request
(docs/protocol.md):

    POST /api/v1/app/requests/{id}
    Authorization: EID-App <ES256 request token signed with the device key>
    {"decision": "approve", "certificate": "<b64 DER>", "signature": "<b64>"}

for which the server checks the request token (signature, audience, method, URL, time,
single-use ``jti``), the certificate (issued by our Citizen CA, this citizen's, valid,
an authentication certificate), its status with our OCSP responder (a real OCSP request
and a verified signed response, in process), the signature over the request's hash, and
completes the request with one conditional update.

Every answer consumes its request and every token's ``jti`` is single use, so before each
wrk run (warm-up too) the script creates fresh pending requests straight in the database
(a bulk insert of ``ApprovalRequest`` rows with the fields ``identity.approvals.open_request``
sets; creating them is set-up, not measured: the issue asks for the server-side checks)
and writes one line per request (id, token, body) that wrk's Lua walks in order.

Scenarios, measured in the same run:

* bare POST (ceiling): ``bench/bare_app.py`` reading the same headers and body sizes;
* approval answer: the request above, answered ``200 {"state":"completed"}``.

Checks: before and after, one request opened with ``open_request`` is answered 200
``completed``, a replay of the same token is 401 and a replay with a fresh token is 409.
After every run, the requests of that run are counted in the database by state: none may
be ``failed`` (or anything but ``completed``/``pending``), and the completed ones must be
at least wrk's count and at most the number of requests wrk sent (the difference is the
requests still in flight when wrk stopped, at most one per connection). Goal: at least
25% of the ceiling.

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
            lines.append(
                (path, "EID-App " + self.app.token("POST", path, now=issued), self.app.approval_body(digest))
            )
        return rows, lines

    def prepare(self, seconds: int) -> None:
        from sqlmodel import Session

        from identity.models import ApprovalRequest

        self.batches += 1
        count = int(seconds * self.rate * MARGIN) + 500
        tag = f"Log in to benchmark run {self.batches}"
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


def _check(env: h.Environment, app: ca.CitizenApp) -> Callable[[], None]:
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
        token = app.token("POST", path)
        with httpx.Client(base_url=env.eid.url, timeout=10) as http:

            def post(tok: str) -> httpx.Response:
                return http.post(
                    path, content=body, headers={"Authorization": f"EID-App {tok}", "Content-Type": JSON}
                )

            first = post(token)
            if first.status_code != 200 or first.json() != {"id": public_id, "state": "completed"}:
                raise h.BenchError(f"approval answer: HTTP {first.status_code} {first.text}")
            same_token = post(token)
            if same_token.status_code != 401:
                raise h.BenchError(f"replayed request token: HTTP {same_token.status_code}, expected 401")
            replay = post(app.token("POST", path))
            if replay.status_code != 409 or "already completed" not in replay.text:
                raise h.BenchError(f"replayed answer: HTTP {replay.status_code} {replay.text}, expected 409")
        with ca.database(env.service) as session:
            stored = session.exec(
                sqlmodel.select(ApprovalRequest).where(ApprovalRequest.public_id == public_id)
            ).one()
            if stored.state != "completed" or stored.signature is None or not stored.certificate_serial:
                raise h.BenchError(f"approval check: stored state {stored.state}")

    return check


def scenarios(env: h.Environment, app: ca.CitizenApp) -> tuple[list[h.Scenario], ApprovalLoad]:
    load = ApprovalLoad(
        env=env, app=app, engine=ca.engine(env.service), lines_file=env.workdir / "approvals.lines"
    )
    # The ceiling gets lines of the same shape (same header and body sizes), sent to /bare.
    _rows, sample = load.answers(CEILING_LINES, "ceiling sample (never inserted)")
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
    answer = h.Scenario(
        "approval answer (token, chain, OCSP, signature)",
        env.eid,
        env.eid.url + "/",
        script=h.walk_script(env.workdir / "approvals.lua", load.lines_file, JSON, expect=EXPECT),
        ceiling="bare POST",
        goal=GOAL,
        check=_check(env, app),
        prepare=load.prepare,
        verify=load.verify,
    )
    return [bare, answer], load


def bench(env: h.Environment, load: h.Load) -> tuple[str, bool]:
    if load.threads != 1:
        h.log("approval benchmark: wrk -t1 (one Lua state walks the single-use requests)")
        load = dataclasses.replace(load, threads=1)
    h.log("approval benchmark: enrolling a citizen over HTTP ...")
    (app,) = ca.enrol(env.service, env.eid.url, 1)
    items, approvals = scenarios(env, app)
    try:
        h.measure(items, load, h.log)
    finally:
        approvals.engine.dispose()
    text, ok = h.table("Approval answers per second (server-side checks)", items, load)
    text += (
        f"\n\nEvery run checked in the database: completed requests = wrk's count + "
        f"{h.span(approvals.in_flight)} still in flight when wrk stopped; "
        f"none failed. Latency of the approval answer at -c{load.connections}: "
        + h.latency_text(items[1].results)
        + f". Server (eid serve): {h.cpu_text(items[1].results)}; bare app: {h.cpu_text(items[0].results)}."
    )
    return text, ok


def main() -> int:
    args = h.arguments(__doc__.splitlines()[0]).parse_args()
    load = h.load_from(args)
    return h.with_service(args.keep, lambda env: bench(env, load))


if __name__ == "__main__":
    sys.exit(main())
