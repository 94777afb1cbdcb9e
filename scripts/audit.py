"""``make audit``: pip-audit over the locked dependencies (``requirements.lock``), with accepted findings.

Accepted findings live in ``audit-ignore.txt``, one ``--ignore-vuln ID  # reason, date``
per line. A vulnerability that is not accepted fails the build. When the vulnerability
service cannot be asked (no network, or an index mirror without PyPI's per-version JSON),
pip-audit would report "No known vulnerabilities found" having audited nothing; this
script says the audit was skipped instead, and exits 0 so offline builds still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE_FILE = ROOT / "audit-ignore.txt"
LOCK = ROOT / "requirements.lock"


def ignored(path: Path) -> list[str]:
    """The accepted vulnerability ids; comments after ``#`` are the reasons."""
    ids: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[0] != "--ignore-vuln":
            sys.exit(f"{path.name}:{number}: expected '--ignore-vuln ID  # reason, date', got {raw!r}")
        if "#" not in raw:
            sys.exit(f"{path.name}:{number}: say why {words[1]} is accepted, and since when")
        ids.append(words[1])
    return ids


def main() -> int:
    accepted = ignored(IGNORE_FILE)
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    # The locked versions (what `make install` and the Dockerfile install), not the venv:
    # something installed by hand is not the product.
    command = [str(Path(sys.executable).parent / "pip-audit"), "-r", str(LOCK), "--no-deps", "--disable-pip"]
    command += ["--format", "json", "--progress-spinner", "off", "--vulnerability-service", service]
    for vuln in accepted:
        command += ["--ignore-vuln", vuln]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"dependency audit SKIPPED: pip-audit could not ask {service} ({last})")
        return 0
    dependencies = report["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        print(
            f"dependency audit SKIPPED: {service} answered for none of {len(dependencies)} packages "
            "(unreachable, or a mirror without per-version JSON); nothing was audited"
        )
        return 0
    found = [(d, v) for d in audited for v in d["vulns"]]
    for dependency, vuln in found:
        fixes = ", ".join(vuln["fix_versions"]) or "no fix yet"
        print(f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in: {fixes})")
    skipped = len(dependencies) - len(audited)
    print(
        f"dependency audit: {len(audited)} packages audited, {skipped} not found on {service}, "
        f"{len(accepted)} findings accepted in {IGNORE_FILE.name}, {len(found)} open"
    )
    if found:
        print(f"Upgrade, or accept an unexploitable finding in {IGNORE_FILE.name} (docs/operations.md).")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
