"""How signing and validation time grow with the document's size, as a table and a chart.

For PDFs of 1 to 100 MB (the multi-page documents of ``bench_signing.py``: compressed
text and an incompressible image per page), measured in the same run:

* signing, server side, each cell in a fresh process (``bench_signing.run_child``): ours at
  B-B and B-LTA, as the service's single-signer flow runs it (each signature consumes its
  own durable copy of the document, made before the clock starts, as the upload is), and
  pyHanko's default ``PdfSigner.sign_pdf`` at B-B (the reference);
* validation, in process, of the same document signed by the service at B-LTA: ours
  (``verification.async_validate_document``: every check, the AdES processes, the report)
  and pyHanko's plain ``validate_pdf_signature`` (the reference);
* SHA-256 over the same number of bytes in memory: the floor any signature or check of the
  whole file pays.

Every validation must come back TOTAL-PASSED (ours) or valid (pyHanko), or there are no
figures. Each series is fitted with a straight line, time = fixed + per-MB x size, so the
note below the table says what a megabyte costs beside what hashing it costs. The chart
(PNG, matplotlib) is written to ``--chart``.

    .venv/bin/python bench/bench_growth.py [--sizes 1,10,25,50,100] [--repeat 3] [--chart FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import _harness as h
import bench_signing
from bench_verify import World

MB = 1 << 20
SIZES = (1, 10, 25, 50, 100)
CHART = h.BENCH_DIR.parent / "docs" / "images" / "benchmark-growth.png"
SIGNING = ("default B-B", "ours B-B", "ours B-LTA")
VALIDATION = ("pyHanko validate_pdf_signature", "ours, full report")
SHA = "SHA-256 of the file"


@dataclass(frozen=True)
class Fit:
    fixed: float
    per_mb: float
    r2: float
    """How much of the variation the line explains (1.0: a straight line)."""


@dataclass
class Growth:
    """Median seconds per series and size (MB, the file's real size)."""

    sizes: dict[int, float]
    series: dict[str, dict[int, float]]

    def fit(self, name: str) -> Fit:
        points = [(self.sizes[s], t) for s, t in self.series[name].items()]
        mean_x = statistics.fmean(x for x, _ in points)
        mean_y = statistics.fmean(y for _, y in points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
        fixed = mean_y - slope * mean_x
        total = sum((y - mean_y) ** 2 for _, y in points)
        residual = sum((y - fixed - slope * x) ** 2 for x, y in points)
        return Fit(fixed=fixed, per_mb=slope, r2=1 - residual / total if total else 1.0)


def _median_seconds(repeat: int, once: Callable[[], None]) -> float:
    once()  # warm-up, and the check that it passes
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sha_seconds(path: Path, repeat: int) -> float:
    data = path.read_bytes()
    return _median_seconds(repeat, lambda: hashlib.sha256(data).digest() and None)


def measure(sizes: list[int], repeat: int, cache: Path, keep: bool = False) -> Growth:
    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from verification import Indication, async_validate_document

    docs = bench_signing.documents(cache, sizes)
    growth = Growth(sizes={}, series={name: {} for name in (*SIGNING, *VALIDATION, SHA)})
    with h.workspace(keep) as workdir:
        h.log("growth: preparing the PKI ...")
        for part in ("signing", "validation"):
            (workdir / part).mkdir()
        setup = bench_signing.prepare_pki(workdir / "signing")
        world = World(workdir / "validation")
        try:
            trust = world.trust()
            root = x509.Certificate.load(world.root)
            for size in sizes:
                source = docs[size]
                growth.sizes[size] = source.stat().st_size / MB
                growth.series[SHA][size] = _sha_seconds(source, repeat)
                for scenario in SIGNING:
                    h.log(f"  {size} MB: signing, {scenario} ...")
                    result = bench_signing.run_child(setup, scenario, size, source, docs[0], repeat)
                    growth.series[scenario][size] = statistics.median(result.seconds)
                h.log(f"  {size} MB: signing at B-LTA for the validation ...")
                signed = world.sign(source, workdir / f"signed-{size}.pdf")

                def plain(path: Path = signed) -> None:
                    with path.open("rb") as stream:
                        signature = PdfFileReader(stream).embedded_regular_signatures[0]
                        context = ValidationContext(trust_roots=[root], allow_fetching=False)
                        if not validate_pdf_signature(signature, context).bottom_line:
                            raise h.BenchError(f"pyHanko did not validate {path.name}")

                def ours(path: Path = signed) -> None:
                    report = asyncio.run(async_validate_document(path, trust=trust))
                    if report.indication is not Indication.TOTAL_PASSED:
                        raise h.BenchError(f"our validation did not pass {path.name}")

                for name, once in zip(VALIDATION, (plain, ours), strict=True):
                    h.log(f"  {size} MB: validation, {name} ...")
                    growth.series[name][size] = _median_seconds(repeat, once)
                signed.unlink()
        finally:
            world.close()
    return growth


def report(growth: Growth, repeat: int, chart: Path | None) -> str:
    sizes = sorted(growth.sizes)
    names = [*SIGNING, *VALIDATION, SHA]
    lines = [
        "#### Time against document size",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; median of {repeat} runs per cell "
        "(signing: each scenario in a fresh process after a warm-up signature; validation: in process, "
        "after a warm-up validation)",
        "",
        "| series | " + " | ".join(f"{growth.sizes[s]:.1f} MB" for s in sizes) + " | fixed | per MB | R² |",
        "|---|" + "---:|" * (len(sizes) + 3),
    ]
    fits = {name: growth.fit(name) for name in names}
    for name in names:
        cells = " | ".join(f"{growth.series[name][s] * 1000:.0f} ms" for s in sizes)
        fit = fits[name]
        lines.append(
            f"| {name} | {cells} | {fit.fixed * 1000:.0f} ms | {fit.per_mb * 1000:.2f} ms | {fit.r2:.3f} |"
        )
    sha = fits[SHA].per_mb
    lines += [
        "",
        "Fixed cost, cost per MB and R² from a least-squares line through each row "
        "(R² near 1: the time grows in a straight line with the size).",
        "",
    ]
    straight = [name for name in names if fits[name].r2 >= 0.95]
    lines.append(
        f"How the cost grows: {len(straight)} of {len(names)} rows are straight lines in the file's size "
        "(R² >= 0.95). Per MB: "
        + "; ".join(
            f"{name} {fits[name].per_mb * 1000:.2f} ms = {fits[name].per_mb / sha:.1f}x hashing it"
            for name in names
            if name != SHA
        )
        + f" (SHA-256: {sha * 1000:.2f} ms per MB). What a megabyte costs beyond hashing is the copying, "
        "the writes to disk (ours makes the signed file durable with fsync; pyHanko's default never syncs) "
        "and, for validation, reading the cross-reference tables and the pages' objects that the "
        "modification analysis looks at. The fixed part is the certificate, revocation and "
        "time-stamp work, which does not depend on the size."
    )
    if chart is not None:
        draw(growth, chart)
        lines += ["", f"![Signing and validation time against document size]({_relative(chart)})"]
    return "\n".join(lines)


def _relative(chart: Path) -> str:
    docs = h.BENCH_DIR.parent / "docs"
    try:
        return str(chart.resolve().relative_to(docs))
    except ValueError:
        return str(chart)


def draw(growth: Growth, chart: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(growth.sizes)
    xs = [growth.sizes[s] for s in sizes]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, names, title in ((left, SIGNING, "Signing (server side)"), (right, VALIDATION, "Validation")):
        for name in (*names, SHA):
            style = {"linestyle": ":", "color": "grey"} if name == SHA else {"marker": "o"}
            axis.plot(xs, [growth.series[name][s] * 1000 for s in sizes], label=name, **style)
        axis.set_title(title)
        axis.set_xlabel("document size (MB)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_ylabel("time per document (ms)")
    figure.suptitle(f"Time against document size, {datetime.now(UTC):%Y-%m-%d} ({os.cpu_count()} CPUs)")
    figure.tight_layout()
    chart.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(chart, dpi=100)
    plt.close(figure)


def bench(
    sizes: list[int], repeat: int, cache: Path, chart: Path | None, keep: bool = False
) -> tuple[str, bool]:
    h.log("growth benchmark: signing and validation time against document size")
    return report(measure(sizes, repeat, cache, keep), repeat, chart), True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="document sizes in MB")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (default 3)")
    parser.add_argument("--cache", type=Path, default=bench_signing.CACHE, help="where the PDFs are kept")
    parser.add_argument("--chart", type=Path, default=CHART, help=f"PNG to write (default {CHART})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if args.repeat < 1 or len(sizes) < 2 or min(sizes) < 1:
        raise SystemExit("--repeat must be at least 1, and give at least two sizes of at least 1 MB")
    return h.exit_status(lambda: bench(sizes, args.repeat, args.cache, args.chart, args.keep))


if __name__ == "__main__":
    sys.exit(main())
