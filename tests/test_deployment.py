"""The Dockerfile and the Makefile must start the service the same way."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _eid_commands(text: str) -> list[str]:
    return re.findall(r"\beid (init|serve)\b", text)


def test_dockerfile_runs_what_make_run_runs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = [line for line in dockerfile.splitlines() if line.startswith("CMD")]
    assert len(cmd) == 1
    assert _eid_commands(run_recipe) == _eid_commands(cmd[0]) == ["init", "serve"]


def test_dockerfile_basics() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2, "multi-stage build"
    assert all("slim" in image for image in stages)
    assert re.search(r"^USER (?!root)\S+", dockerfile, flags=re.MULTILINE), "runs as a non-root user"
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert re.search(r"^VOLUME", dockerfile, flags=re.MULTILINE)
    # Every package directory is copied into the image.
    for package in ("keys", "identity", "signing", "verification", "api", "wallet"):
        assert f"COPY {package} " in dockerfile


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
