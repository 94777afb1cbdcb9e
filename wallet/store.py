"""The wallet directory: files, atomic writes, and the PIN try counters.

``DIR/wallet.json`` (mode 0600) holds the certificates, the wrapped private keys (or
where they live on a PKCS#11 token) and the try counters (format in ``state``).
``DIR/device.key`` is the device key as *unencrypted* PKCS#8, mode 0600: the device
key only proves to the service which app is calling, so the app can list and refuse
requests without a PIN. Approving anything needs the authentication or signing key,
and those need a PIN. The directory is mode 0700.

Every write goes to a temporary file in the same directory, is fsynced, replaces the
old file with ``os.replace`` and then the directory is fsynced: a crash leaves the old
file or the new one, never half of one. Writers hold ``DIR/.lock`` (``flock``), so two
``eid-app`` processes cannot both spend the same PIN try.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import Blocked, IncorrectSecret, SecretLocked, StoreError, WrongPin
from .pin import MAX_TRIES
from .state import Counter, WalletState, from_json, to_json

WALLET_FILE = "wallet.json"
DEVICE_KEY_FILE = "device.key"
LOCK_FILE = ".lock"

T = TypeVar("T")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) so a crash leaves old or new, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is durable only once the directory is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_REMEDY = {
    "auth": "unblock it with your PUK: eid-app unblock --key auth",
    "sign": "unblock it with your PUK: eid-app unblock --key sign",
    "puk": "the PINs can no longer be reset; ask an officer for a new activation code and enrol again",
}
_NAMES = {"auth": "PIN1", "sign": "PIN2", "puk": "PUK"}


class Wallet:
    """The wallet in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()

    @property
    def file(self) -> Path:
        return self.directory / WALLET_FILE

    def exists(self) -> bool:
        return self.file.exists()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the wallet's lock (blocking). Not re-entrant: never nest it."""
        try:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the wallet in {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def prepare(self) -> None:
        """Make the directory (mode 0700) and check no wallet is there yet.

        Enrolment calls this before it spends the activation code, so a directory
        that cannot be written fails while the code is still good.
        """
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)  # also when it existed, and despite the umask
        except OSError as exc:
            raise StoreError(f"cannot create the wallet directory {self.directory}: {exc.strerror}") from None
        with self.locked():
            if self.exists():
                raise StoreError(f"a wallet already exists in {self.directory}")
            if not os.access(self.directory, os.W_OK):
                raise StoreError(f"cannot write to the wallet directory {self.directory}")

    def create(self, state: WalletState, device_key: ec.EllipticCurvePrivateKey) -> None:
        """Write a new wallet; refuses to overwrite one."""
        self.prepare()
        with self.locked():
            if self.exists():
                raise StoreError(f"a wallet already exists in {self.directory}")
            pem = device_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                write_atomic(self.directory / DEVICE_KEY_FILE, pem)
                self._write(state)  # last: a wallet exists only once it is complete
            except OSError as exc:
                raise StoreError(f"cannot write the wallet in {self.directory}: {exc.strerror}") from None

    def load(self) -> WalletState:
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StoreError(f"no wallet in {self.directory}: run eid-app enroll first") from None
        except OSError as exc:
            raise StoreError(f"cannot read the wallet {self.file}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise StoreError("the wallet file is damaged") from None
        return from_json(data)

    def _write(self, state: WalletState) -> None:
        write_atomic(self.file, json.dumps(to_json(state), indent=2).encode("utf-8"))

    def save(self, state: WalletState) -> None:
        """Write ``state`` atomically; call with the lock held."""
        try:
            self._write(state)
        except OSError as exc:
            raise StoreError(f"cannot write the wallet {self.file}: {exc.strerror}") from None

    def device_key(self) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key((self.directory / DEVICE_KEY_FILE).read_bytes(), None)
        except OSError as exc:
            raise StoreError(f"cannot read the device key: {exc.strerror}") from None
        except ValueError:
            raise StoreError("the device key file is damaged") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise StoreError("the device key is not an EC key")
        return key

    def attempt(
        self,
        counter: Counter,
        check: Callable[[WalletState], T],
        *,
        on_success: Callable[[WalletState, T], WalletState] | None = None,
    ) -> T:
        """Try a PIN or PUK by running ``check``, under the three-tries rule.

        The counter goes down and is on disk *before* ``check`` runs, so killing the
        process after a wrong guess (or during one) still costs the try. A correct
        secret puts it back to three; ``on_success`` may change the state in the same
        write. ``check`` raises ``IncorrectSecret`` for a wrong secret, or
        ``SecretLocked`` when the token already blocked it.
        """
        name = _NAMES[counter]
        with self.locked():
            state = self.load()
            left = state.tries.get(counter)
            if left <= 0:
                raise Blocked(name, _REMEDY[counter])
            state = replace(state, tries=state.tries.set(counter, left - 1))
            self.save(state)
            try:
                result = check(state)
            except IncorrectSecret:
                if left - 1 == 0:
                    raise Blocked(name, _REMEDY[counter]) from None
                raise WrongPin(name, left - 1) from None
            except SecretLocked:
                self.save(replace(state, tries=state.tries.set(counter, 0)))
                raise Blocked(name, _REMEDY[counter]) from None
            state = replace(state, tries=state.tries.set(counter, MAX_TRIES))
            if on_success is not None:
                state = on_success(state, result)
            self.save(state)
            return result
