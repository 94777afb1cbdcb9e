"""The finish that turns the source itself into the output (``consume_source``), its
retries, and the document time stamp written by our own writer from the kept hash state.

Witnesses: poppler's pdfsig (NSS trusting our root), pyHanko's validator (the PAdES level
from embedded data alone) and ``qpdf --check``.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from io import BufferedRandom
from pathlib import Path

import pytest

from signing import Level, Prepared, PreparedDocumentMissing, _consume, _doc_timestamp, _prefix, async_finish
from signing._draft import SUFFIX
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, run, sign_digest
from tests.signing.witnesses import async_pyhanko_report, pdfsig

LEVELS = [Level.B_B, Level.B_LTA]


def _prepare(trust: Trust, citizen: IssuedCitizen, tmp_path: Path, level: Level, pages: int = 3) -> Prepared:
    source = make_pdf(tmp_path / "upload.pdf", pages=pages)
    prepared = trust.prepare(source, tmp_path / "work", citizen.der, level=level, consume_source=True)
    # As the service does it: the state goes to the database, the finish reads it back.
    return Prepared.from_bytes(prepared.to_bytes())


def _finish(trust: Trust, citizen: IssuedCitizen, prepared: Prepared, out: Path) -> Path:
    return run(_async_finish(trust, citizen, prepared, out))


async def _async_finish(trust: Trust, citizen: IssuedCitizen, prepared: Prepared, out: Path) -> Path:
    return await async_finish(
        prepared,
        sign_digest(citizen, prepared),
        out=out,
        timestamper=trust.timestamper(),
        validation=trust.revocation(),
        consume_source=True,
    )


def _check_valid(trust: Trust, nss_db: str, out: Path, level: Level) -> None:
    """pdfsig, pyHanko and qpdf accept ``out`` at ``level``, with one signature."""
    report = pdfsig(nss_db, out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    if level is Level.B_LTA:
        assert len(report) == 2
        stamp = report[1]
        # pdfsig 22.12 reads the time stamp's signer and ranges but does not verify an
        # RFC 3161 token ("not yet been verified"): pyHanko's LTA validation below does.
        assert "Signer Certificate Common Name: EID Demo Authority Time-Stamping Unit" in stamp
        assert "Total document signed" in stamp
    else:
        assert len(report) == 1 and "Total document signed" in report[0]
    checked = run(async_pyhanko_report(out, trust.root_der))
    assert checked.status.bottom_line
    assert checked.level == level.value
    assert checked.document_timestamps == (1 if level is Level.B_LTA else 0)
    qpdf = subprocess.run(["qpdf", "--check", str(out)], capture_output=True, text=True, timeout=60)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
def test_the_source_becomes_the_output(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path, level: Level
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, level)
    assert prepared.source_path is not None
    original = prepared.source_path.read_bytes()
    inode = prepared.source_path.stat().st_ino
    out = tmp_path / "signed.pdf"
    assert _finish(trust, citizen, prepared, out) == out
    _check_valid(trust, nss_db, out, level)
    # The very file, renamed: no copy of the document was made, and nothing is left.
    assert not prepared.source_path.exists()
    assert out.stat().st_ino == inode
    assert out.read_bytes()[: len(original)] == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signed.pdf", "work"]
    assert not [p for p in (tmp_path / "work").iterdir() if p.name.endswith(SUFFIX)]


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
@pytest.mark.parametrize("tail", ["part of the update", "more than the update"])
def test_a_retry_after_a_crash_mid_append_cuts_and_redoes(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path, level: Level, tail: str
) -> None:
    citizen = signers["p384"]
    prepared = _prepare(trust, citizen, tmp_path, level)
    assert prepared.source_path is not None
    update = prepared.prepared_path.read_bytes()
    # What a finish that died mid-append leaves: the source with a torn tail.
    torn = update[: len(update) // 2] if tail == "part of the update" else update + b"%garbage\n" * 500
    with prepared.source_path.open("ab") as stream:
        stream.write(torn)
    out = tmp_path / "signed.pdf"
    _finish(trust, citizen, prepared, out)
    _check_valid(trust, nss_db, out, level)
    assert not prepared.source_path.exists()


def test_a_changed_source_is_refused_not_signed(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_B)
    assert prepared.source_path is not None
    data = bytearray(prepared.source_path.read_bytes())
    data[100] ^= 1  # a byte of the document itself, and a tail as a crash would leave
    prepared.source_path.write_bytes(bytes(data) + b"tail")
    out = tmp_path / "signed.pdf"
    with pytest.raises(PreparedDocumentMissing, match="changed"):
        _finish(trust, citizen, prepared, out)
    assert not out.exists()


@pytest.mark.parametrize("kept", [True, False], ids=["kept-hash", "rehashed"])
@pytest.mark.parametrize("damage", ["byte", "zeros"])
def test_a_lost_prepared_update_is_refused_not_signed(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path, kept: bool, damage: str
) -> None:
    """The prepared update is not synced when the source is to be consumed: after a power
    loss it may hold other bytes (zeros, on some file systems). The finish checks it
    against the digest the citizen signed, refuses, and leaves the source as it was."""
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_B)
    assert prepared.source_path is not None
    original = prepared.source_path.read_bytes()
    update = bytearray(prepared.prepared_path.read_bytes())
    placeholder = slice(
        prepared.reserved_region_start - prepared.source_size,
        prepared.reserved_region_end - prepared.source_size,
    )
    if damage == "byte":
        update[placeholder.stop + 5] ^= 1  # after the placeholder: the /ByteRange's tail
    else:
        kept_placeholder = update[placeholder]
        update = bytearray(len(update))
        update[placeholder] = kept_placeholder  # zeros around a placeholder that still looks empty
    prepared.prepared_path.write_bytes(bytes(update))
    if not kept:
        _prefix.forget_all()
    out = tmp_path / "signed.pdf"
    with pytest.raises(PreparedDocumentMissing, match="changed or lost"):
        _finish(trust, citizen, prepared, out)
    assert not out.exists()
    assert prepared.source_path.read_bytes() == original


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
def test_a_retry_after_the_rename_returns_the_same_file(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path, level: Level
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, level)
    out = tmp_path / "signed.pdf"
    _finish(trust, citizen, prepared, out)
    first = out.read_bytes()
    # The same state finished again (the process died before recording the result).
    assert _finish(trust, citizen, prepared, out) == out
    assert out.read_bytes() == first  # not signed twice
    _check_valid(trust, nss_db, out, level)


def test_two_finishers_at_once_sign_once(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_B)
    out = tmp_path / "signed.pdf"

    async def both() -> list[Path]:
        return list(
            await asyncio.gather(
                _async_finish(trust, citizen, prepared, out), _async_finish(trust, citizen, prepared, out)
            )
        )

    assert run(both()) == [out, out]
    _check_valid(trust, nss_db, out, Level.B_B)


def test_a_used_up_source_without_its_output_is_a_clear_error(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_B)
    out = tmp_path / "signed.pdf"
    _finish(trust, citizen, prepared, out)
    # The output went missing (or a retry names another one): never a guess.
    with pytest.raises(PreparedDocumentMissing, match="used up"):
        _finish(trust, citizen, prepared, tmp_path / "elsewhere.pdf")
    out.unlink()
    with pytest.raises(PreparedDocumentMissing, match="used up"):
        _finish(trust, citizen, prepared, out)
    assert not out.exists()


def test_another_file_at_the_output_is_not_taken_for_the_result(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_B)
    out = tmp_path / "signed.pdf"
    _finish(trust, citizen, prepared, out)
    make_pdf(out, pages=5)
    with pytest.raises(PreparedDocumentMissing, match="not its signed result"):
        _finish(trust, citizen, prepared, out)


def test_a_failed_finish_gives_the_source_back(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    """The TSA fails: the source is cut back to the document, and a later finish works."""
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path, Level.B_LTA)
    assert prepared.source_path is not None
    original = prepared.source_path.read_bytes()

    def refuse(_der: bytes) -> bytes:
        raise RuntimeError("the TSA is down")

    out = tmp_path / "signed.pdf"
    from signing import InProcessTimeStamper, TrustServiceUnavailable

    with pytest.raises(TrustServiceUnavailable):
        run(
            async_finish(
                prepared,
                sign_digest(citizen, prepared),
                out=out,
                timestamper=InProcessTimeStamper(refuse),
                validation=trust.revocation(),
                consume_source=True,
            )
        )
    assert prepared.source_path.read_bytes() == original and not out.exists()
    _finish(trust, citizen, prepared, out)
    _check_valid(trust, nss_db, out, Level.B_LTA)


def _hashed_ranges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every range of the output the document time stamp hashes from the file."""
    ranges: list[tuple[int, int]] = []
    real = _doc_timestamp._hash

    def spy(stream: object, digest: hashlib._Hash, begin: int, stop: int) -> None:
        ranges.append((begin, stop))
        real(stream, digest, begin, stop)  # type: ignore[arg-type]

    monkeypatch.setattr(_doc_timestamp, "_hash", spy)
    return ranges


@pytest.mark.parametrize("consume", [True, False], ids=["consumed", "copied"])
def test_the_document_time_stamp_continues_the_kept_hash(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    consume: bool,
) -> None:
    citizen = signers["p256"]
    source = make_pdf(tmp_path / "upload.pdf", pages=20)
    size = source.stat().st_size
    prepared = trust.prepare(
        source, tmp_path / "work", citizen.der, level=Level.B_LTA, consume_source=consume
    )
    ranges = _hashed_ranges(monkeypatch)
    out = tmp_path / "signed.pdf"
    if consume:
        _finish(trust, citizen, prepared, out)
    else:
        trust.finish(prepared, sign_digest(citizen, prepared), out)
    # Only what follows the uploaded document was read again.
    assert ranges and min(begin for begin, _stop in ranges) == size
    _check_valid(trust, nss_db, out, Level.B_LTA)


@pytest.mark.parametrize("consume", [True, False], ids=["consumed", "copied"])
def test_without_a_kept_hash_the_whole_file_is_hashed(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    consume: bool,
) -> None:
    """Another instance (or a restart) finishes: no state in memory, the same valid result.
    A consumed source is hashed again by the check of the prepared update against the
    digest, and the document time stamp continues that hash; a copy is hashed by the
    document time stamp from its first byte."""
    citizen = signers["p384"]
    source = make_pdf(tmp_path / "upload.pdf", pages=20)
    size = source.stat().st_size
    prepared = trust.prepare(
        source, tmp_path / "work", citizen.der, level=Level.B_LTA, consume_source=consume
    )
    _prefix.forget_all()
    ranges = _hashed_ranges(monkeypatch)
    rehashed: list[int] = []
    real = _consume._verified_prefix

    def spy(stream: BufferedRandom, prepared: Prepared) -> hashlib._Hash:
        rehashed.append(prepared.source_size)
        return real(stream, prepared)

    monkeypatch.setattr(_consume, "_verified_prefix", spy)
    out = tmp_path / "signed.pdf"
    if consume:
        _finish(trust, citizen, prepared, out)
        assert rehashed == [size]
        assert ranges[0][0] == size
    else:
        trust.finish(prepared, sign_digest(citizen, prepared), out)
        assert rehashed == []
        assert ranges[0][0] == 0
    _check_valid(trust, nss_db, out, Level.B_LTA)


def test_a_kept_hash_is_not_used_for_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(b"one")
    seen = path.stat()
    _prefix.remember(path, seen, "sha256", hashlib.sha256(b"one"))
    state = _prefix.recall(path, seen, "sha256")
    assert state is not None and state.digest() == hashlib.sha256(b"one").digest()
    assert _prefix.recall(path, seen, "sha384") is None
    path.write_bytes(b"two")
    assert _prefix.recall(path, path.stat(), "sha256") is None
    other = tmp_path / "b.pdf"
    other.write_bytes(b"one")
    assert _prefix.recall(other, other.stat(), "sha256") is None


def test_the_document_time_stamp_beside_the_dss_in_one_revision(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not pyHanko's ``PdfTimeStamper`` (which would hash the whole file again), but the
    same shape: the DSS and a /DocTimeStamp field in one revision after the signature's."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers import pdf_signer

    citizen = signers["p256"]

    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pyHanko's PdfTimeStamper was used")

    monkeypatch.setattr(pdf_signer.PdfTimeStamper, "async_timestamp_pdf", refuse)
    prepared = _prepare(trust, citizen, tmp_path, Level.B_LTA)
    assert prepared.source_path is not None
    with prepared.source_path.open("rb") as stream:
        revisions = PdfFileReader(stream).xrefs.total_revisions
    out = tmp_path / "signed.pdf"
    _finish(trust, citizen, prepared, out)
    _check_valid(trust, nss_db, out, Level.B_LTA)
    with out.open("rb") as stream:
        reader = PdfFileReader(stream)
        assert reader.xrefs.total_revisions == revisions + 2  # the signature's, then DSS + stamp
        stamp = reader.embedded_timestamp_signatures[0]
        assert stamp.sig_object["/Type"] == "/DocTimeStamp"
        assert stamp.sig_object["/SubFilter"] == "/ETSI.RFC3161"
        assert stamp.field_name.startswith("Timestamp-")
        assert stamp.signed_revision == revisions + 1
        assert "/DSS" in reader.root
        assert "/ESIC" in reader.root["/Extensions"]  # as pyHanko registers it for PAdES
