"""The Dockerfile, docker-compose.yml and the Makefile must start the service the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from api.settings import Settings

ROOT = Path(__file__).parents[1]


def _eid_commands(text: str) -> list[str]:
    return re.findall(r"\beid (init|serve)\b", text)


def _make_run_commands() -> list[str]:
    """The ``eid`` commands ``make run`` runs, in order of first use: those in its recipe,
    then those of a script it starts (``scripts/demo.py`` starts ``eid serve`` itself)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    found = _eid_commands(recipe)
    for script in re.findall(r"scripts/[\w.-]+\.py", recipe):
        text = (ROOT / script).read_text()
        found += _eid_commands(text)
        found += re.findall(r'"eid"\),?\s*"(init|serve)"', text)
    return list(dict.fromkeys(found))


def test_dockerfile_runs_what_make_run_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = [line for line in dockerfile.splitlines() if line.startswith("CMD")]
    assert len(cmd) == 1
    assert _make_run_commands() == _eid_commands(cmd[0]) == ["init", "serve"]


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


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _dockerfile_cmd() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (line,) = [line for line in dockerfile.splitlines() if line.startswith("CMD")]
    command = json.loads(line.removeprefix("CMD").strip())
    assert isinstance(command, list)
    return command


def test_compose_runs_what_the_dockerfile_and_make_run_run() -> None:
    service = _compose()["services"]["eid"]
    assert service["build"]["context"] == "."
    assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    # Either the image's own CMD, or exactly the same command spelled out.
    command = service.get("command", _dockerfile_cmd())
    assert command == _dockerfile_cmd()
    assert _eid_commands(" ".join(command)) == _make_run_commands() == ["init", "serve"]
    # The port it serves on is the one published and health-checked.
    port = re.search(r"--port (\d+)", " ".join(command))
    assert port is not None
    assert any(str(p).endswith(f":{port[1]}") for p in service["ports"])
    health = " ".join(service["healthcheck"]["test"])
    assert re.search(rf"127\.0\.0\.1:{port[1]}/(healthz|readyz)", health)


def test_compose_configures_only_through_eid_variables() -> None:
    compose = _compose()
    service = compose["services"]["eid"]
    environment = service["environment"]
    assert environment and all(name.startswith("EID_") for name in environment)
    for name in environment:
        # Every variable is a real setting (EID_A__B -> section a, field b).
        section, *field = name.removeprefix("EID_").lower().split("__")
        assert section in Settings.model_fields, name
        if field:
            annotation = Settings.model_fields[section].annotation
            assert field[0] in getattr(annotation, "model_fields", {}), name
    # PostgreSQL through psycopg 3, at the compose database service, which is PostgreSQL 16.
    url = environment["EID_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    assert compose["services"]["db"]["image"].startswith("postgres:16")
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(compose["services"]["db"]["healthcheck"]["test"])
    # The data directory is a named volume at the image's VOLUME and EID_DATA_DIR.
    dockerfile = (ROOT / "Dockerfile").read_text()
    volume = re.search(r'^VOLUME \["([^"]+)"\]', dockerfile, flags=re.MULTILINE)
    assert volume is not None and environment["EID_DATA_DIR"] == volume[1]
    mounts = dict(str(m).split(":", 1)[::-1] for m in service["volumes"])
    assert mounts[volume[1]] in compose["volumes"]


def test_the_lock_pins_every_dependency_within_pyproject() -> None:
    """requirements.lock (``make lock``) pins each direct dependency at a version its
    pyproject.toml range allows, and the Dockerfile and ``make install`` install with it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line!r}"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    for raw in direct:
        requirement = Requirement(raw)
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is missing from requirements.lock: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name}=={version} vs {raw}"
        )
    assert "-c requirements.lock" in (ROOT / "Dockerfile").read_text()
    assert "-c requirements.lock -e '.[test]'" in (ROOT / "Makefile").read_text()
