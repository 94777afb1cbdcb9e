"""``make lock``: write ``requirements.lock`` from the packages installed in the venv.

The lock pins every package that the project's dependencies need (with the ``test`` and
``bench`` extras), walked from ``pyproject.toml`` through the installed packages'
metadata, so something installed by hand for local use never lands in it. ``make
install``, the Dockerfile and ``make audit`` use it: installs are repeatable, and the audit
checks exactly these versions. After changing a dependency in ``pyproject.toml``: ``make
lock``, then commit both files.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
EXTRAS = ("test", "bench")
BOOTSTRAP = {"pip", "setuptools", "wheel"}
"""The installers themselves: upgraded before the install, never pinned."""


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    marker: Marker | None = requirement.marker
    if marker is None:
        return True
    return any(marker.evaluate({"extra": extra}) for extra in extras or {""})


def closure() -> dict[str, str]:
    """{canonical name: installed version} of everything the project needs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(r), set()) for r in project["dependencies"]]
    todo += [(Requirement(r), set()) for extra in EXTRAS for r in project["optional-dependencies"][extra]]
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, _ = todo.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{requirement.name} is not installed: run `make install` (and `make bench`) first")
        if name not in BOOTSTRAP:
            found[name] = dist.version
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if _wanted(sub, set(requirement.extras)):
                todo.append((sub, set()))
    return found


def main() -> int:
    pins = closure()
    lines = [
        "# Pinned versions of every dependency (with the test and bench extras).",
        "# Written by `make lock` (scripts/lock.py) from the venv; used by `make install`,",
        "# the Dockerfile (as constraints) and `make audit`. Do not edit by hand.",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"wrote {LOCK.name}: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
