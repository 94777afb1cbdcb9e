"""Key store backends for the tests: encrypted files, and a throwaway SoftHSM2.

SoftHSM2 reads ``SOFTHSM2_CONF`` and scans its token directory only in
``C_Initialize``, and python-pkcs11 keeps one loaded library per path for the whole
process. So the configuration is set once per test session, each test gets its own
token (a unique label, made with ``softhsm2-util``), and the library is re-initialised
when a new token is not yet visible. That drops every open session, which is safe
because stores are opened and closed inside a single test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pkcs11
import pytest

from keys.keystore import FileKeyStore, KeyAlgorithm, KeyInfo, KeyStore, Pkcs11KeyStore

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "1234"
SO_PIN = "5678"
PASSPHRASE = "correct horse battery staple"


class Backend(Protocol):
    name: str
    secret: str

    def fresh(self) -> str:
        """A new, empty place for keys (a directory or a token label)."""

    def open(self, location: str, secret: str | None = None) -> KeyStore:
        """A store on ``location``, unlocked with ``secret`` (default: the right one)."""


class FileBackend:
    name = "file"
    secret = PASSPHRASE

    def __init__(self, root: Path) -> None:
        self._root = root
        self._count = itertools.count()

    def fresh(self) -> str:
        return str(self._root / f"store-{next(self._count)}")

    def open(self, location: str, secret: str | None = None) -> KeyStore:
        return FileKeyStore(Path(location), self.secret if secret is None else secret)


class SoftHsmBackend:
    name = "softhsm"
    secret = USER_PIN
    module = SOFTHSM_MODULE

    def __init__(self, conf: Path) -> None:
        self._conf = conf
        self._count = itertools.count()

    def fresh(self) -> str:
        label = f"test-{os.getpid()}-{next(self._count)}"
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label]
            + ["--pin", USER_PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(self._conf)},
        )
        lib = pkcs11.lib(self.module)
        if label not in {token.label for token in lib.get_tokens()}:
            lib.reinitialize()  # rescans the token directory
        return label

    def open(self, location: str, secret: str | None = None) -> KeyStore:
        pin = self.secret if secret is None else secret
        return Pkcs11KeyStore(module_path=self.module, token_label=location, pin=pin)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmBackend]:
    """A SoftHSM2 token directory of our own, for the whole test session."""
    if not Path(SOFTHSM_MODULE).is_file() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 not installed ({SOFTHSM_MODULE})")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        # Before the library is first loaded: SoftHSM reads it in C_Initialize.
        patch.setenv("SOFTHSM2_CONF", str(conf))
        backend = SoftHsmBackend(conf)
        yield backend
        # Leave no initialised library pointing at a deleted directory.
        pkcs11.lib(SOFTHSM_MODULE).finalize()


@pytest.fixture(
    scope="session",
    params=["file", pytest.param("softhsm", marks=pytest.mark.softhsm)],
)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "softhsm":
        hsm: SoftHsmBackend = request.getfixturevalue("softhsm")
        return hsm
    return FileBackend(tmp_path_factory.mktemp("file-keys"))


@pytest.fixture
def store(backend: Backend) -> Iterator[KeyStore]:
    """An empty store of its own."""
    opened = backend.open(backend.fresh())
    yield opened
    opened.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedKeys:
    location: str
    """Where the keys live."""
    created: dict[KeyAlgorithm, KeyInfo]
    """What ``create_key`` answered, by algorithm; the key id is the algorithm name."""


@pytest.fixture(scope="session")
def shared_keys(backend: Backend) -> SharedKeys:
    """One key of each algorithm per backend: RSA generation in SoftHSM is slow."""
    location = backend.fresh()
    creator = backend.open(location)
    try:
        created = {alg: creator.create_key(alg.value, alg) for alg in KeyAlgorithm}
    finally:
        creator.close()
    return SharedKeys(location=location, created=created)


@pytest.fixture
def shared_store(backend: Backend, shared_keys: SharedKeys) -> Iterator[KeyStore]:
    """A newly opened store holding the shared keys."""
    opened = backend.open(shared_keys.location)
    yield opened
    opened.close()
