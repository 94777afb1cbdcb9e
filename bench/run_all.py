"""Run every benchmark (OCSP, TSA, approvals, OpenID Connect) against one service.

This is what ``make bench`` runs. All use the same ``eid serve`` and bare FastAPI
processes; every figure is shown beside the bare ceiling measured in the same run.
Exit status: 0 all goals met, 1 a goal missed, 2 the benchmark could not run (or the
service answered errors).

    .venv/bin/python bench/run_all.py [--duration 10] [--connections 16] [--rounds 1]
"""

from __future__ import annotations

import sys

import _harness as h
import bench_approvals
import bench_ocsp
import bench_oidc
import bench_signing
import bench_tsa


def main() -> int:
    parser = h.arguments(__doc__.splitlines()[0])
    bench_ocsp.add_arguments(parser)
    bench_oidc.add_arguments(parser)
    args = parser.parse_args()
    load = h.load_from(args)
    try:
        with h.environment(args.keep) as env:
            results = [
                bench_ocsp.bench(env, load, args.nonce_goal),
                bench_tsa.bench(env, load),
                bench_approvals.bench(env, load),
                bench_oidc.bench(env, load, args.logins, args.login_concurrency),
            ]
        # In process, after the servers have stopped: about a minute once its PDFs are cached.
        results.append(bench_signing.bench(5, [1, 10, 100], bench_signing.CACHE))
    except h.BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for text, _ok in results:
        print(text)
        print()
    ok = all(passed for _text, passed in results)
    print("all goals met" if ok else "GOALS MISSED: see FAIL rows above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
