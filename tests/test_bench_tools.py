"""The benchmark tooling's own logic (no timing here): the doc writer, the line fit, the
soak verdict, and that docs/benchmarks.md carries a generated section with its chart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_growth  # noqa: E402
import bench_soak  # noqa: E402
import run_all  # noqa: E402


def test_write_replaces_only_the_marked_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Analysis\n\nHand-written.\n", encoding="utf-8")
    run_all.write(doc, "## Latest run\n\nfirst")
    run_all.write(doc, "## Latest run\n\nsecond")
    text = doc.read_text(encoding="utf-8")
    assert text.count(run_all.BEGIN) == 1 and text.count(run_all.END) == 1
    assert "second" in text and "first" not in text
    assert text.startswith("# Benchmarks\n") and text.endswith("## Analysis\n\nHand-written.\n")


def test_fit_of_a_straight_line_is_exact() -> None:
    sizes = {1: 1.0, 10: 10.0, 100: 100.0}
    growth = bench_growth.Growth(
        sizes=sizes, series={"x": {s: 0.020 + 0.003 * mb for s, mb in sizes.items()}}
    )
    fit = growth.fit("x")
    assert fit.fixed == pytest.approx(0.020) and fit.per_mb == pytest.approx(0.003)
    assert fit.r2 == pytest.approx(1.0)


def test_soak_verdict_catches_growth_errors_and_a_missed_schedule() -> None:
    def soak(end_kib: int, logins: int, failures: list[str]) -> tuple[str, bool]:
        samples = [(float(t), 100_000) for t in range(0, 61, 5)] + [
            (float(t), end_kib) for t in range(540, 601, 5)
        ]
        run = bench_soak.Soak(peak_rate=20, target_rate=10, seconds=600, logins=logins, failures=failures)
        run.samples = samples
        return bench_soak.report(run, 10)

    assert soak(105_000, 6000, [])[1]
    assert not soak(115_000, 6000, [])[1]  # +15% memory
    assert not soak(105_000, 6000, ["login 3: HTTP 500"])[1]
    assert not soak(105_000, 5000, [])[1]  # 8.3/s against a schedule of 10/s


def test_benchmarks_doc_has_a_generated_section_and_its_chart() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert run_all.BEGIN in text and run_all.END in text
    section = text.split(run_all.BEGIN, 1)[1].split(run_all.END, 1)[0]
    for heading in ("Approval answers", "OpenID Connect", "Soak", "Signing", "Validation", "document size"):
        assert heading in section
    charts = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", section)
    assert charts, "no chart in the generated section"
    for chart in charts:
        assert (ROOT / "docs" / chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
