"""Run every benchmark against freshly started servers and write the results into the docs.

This is what ``make bench`` runs: OCSP, TSA, approval answers and OpenID Connect against
one new ``eid serve`` (each beside the bare FastAPI ceiling measured in the same run); a
soak of complete logins at half the peak rate against another new one; the approval
answer's CPU step by step, in process (``bench_answer_costs.py``); then signing,
validation, and their growth with the document's size, in process (each beside pyHanko's
defaults measured in the same run, plus a PNG chart). The tables replace the section
between the markers in ``docs/benchmarks.md`` (``--doc``; ``--no-doc`` to only print).

Exit status: 0 all goals met, 1 a goal missed, 2 a benchmark could not run (or the
service answered errors: nothing is written then).

    .venv/bin/python bench/run_all.py [--duration 10] [--rounds 1] [--soak-minutes 10] [--no-doc]
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import _harness as h
import bench_answer_costs
import bench_approvals
import bench_growth
import bench_ocsp
import bench_oidc
import bench_signing
import bench_soak
import bench_tsa
import bench_verify

DOC = h.BENCH_DIR.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- make bench: results begin (written by bench/run_all.py; edits here are overwritten) -->"
END = "<!-- make bench: results end -->"


def main() -> int:
    parser = h.arguments(__doc__.splitlines()[0])
    bench_ocsp.add_arguments(parser)
    bench_oidc.add_arguments(parser)
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="soak length; 0 skips it (10)")
    parser.add_argument("--sizes", default="1,10,25,50,100", help="document sizes in MB for the growth chart")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"the document to update (default {DOC})")
    parser.add_argument("--no-doc", action="store_true", help="print the results, write nothing")
    args = parser.parse_args()
    load = h.load_from(args)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    chart = None if args.no_doc else args.doc.parent / "images" / "benchmark-growth.png"
    started, load_before, commit = (
        time.perf_counter(),
        os.getloadavg(),
        _commit(),
    )  # before the chart is written
    sections: list[tuple[str, str, bool]] = []
    try:
        with h.environment(args.keep) as env:
            sections += [
                ("OCSP and time stamps", *bench_ocsp.bench(env, load, args.nonce_goal)),
                ("", *bench_tsa.bench(env, load)),
                ("Approval answers (issue 3)", *bench_approvals.bench(env, load)),
                (
                    "OpenID Connect (issue 4)",
                    *bench_oidc.bench(env, load, args.logins, args.login_concurrency),
                ),
            ]
        if args.soak_minutes:
            with h.environment(args.keep) as env:
                sections.append(("Soak (issue 8)", *bench_soak.bench(env, args.soak_minutes)))
        with h.environment(args.keep) as env:  # in process: the answer's CPU, step by step
            sections.append(("", bench_answer_costs.bench(env, 1500), True))
        # In process, after the servers have stopped.
        sections += [
            ("Signing (issue 5)", *bench_signing.bench(5, [1, 10, 100], bench_signing.CACHE)),
            ("Validation (issue 6)", *bench_verify.bench()),
            ("Time against document size", *bench_growth.bench(sizes, 3, bench_signing.CACHE, chart)),
        ]
    except h.BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    body = render(sections, time.perf_counter() - started, load_before, commit)
    print(body)
    ok = all(passed for _title, _text, passed in sections)
    print("all goals met" if ok else "GOALS MISSED: see FAIL rows above")
    if not args.no_doc:
        write(args.doc, body)
        print(f"wrote {args.doc}" + (f" and {chart}" if chart else ""))
    return 0 if ok else 1


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(h.BENCH_DIR.parent), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def render(
    sections: list[tuple[str, str, bool]], seconds: float, load_before: tuple[float, ...], commit: str
) -> str:
    missed = [title for title, _text, passed in sections if not passed and title]
    lines = [
        "## Latest `make bench` run",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{commit}`, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average {load_before[0]:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end; {seconds / 60:.0f} min in all.",
        "",
        "`" + " ".join(["bench/run_all.py", *sys.argv[1:]]) + "`. Only the ratios to the reference measured "
        "in the same run mean anything; absolute times move with whatever else the machine does.",
        "",
        "Goals missed in this run: " + (", ".join(missed) if missed else "none") + ".",
    ]
    for _title, text, _passed in sections:
        # Each script's tables carry their own headings; one level below this section's.
        lines += ["", re.sub(r"^#{2,4} ", "### ", text, flags=re.MULTILINE)]
    return "\n".join(lines)


def write(doc: Path, body: str) -> None:
    """Replace the marked section of ``doc`` (or insert it after the first paragraph)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n\n{body.strip()}\n\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n{rest}"
    tmp = doc.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(doc)


if __name__ == "__main__":
    sys.exit(main())
