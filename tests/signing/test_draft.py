"""The output's copy started by the prepare step (``signing/_draft.py``): taken by the
finish of the same process, never trusted otherwise, and never left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from signing import Level, Prepared, _draft, async_prepare
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, run, sign_digest
from tests.signing.witnesses import pdfsig


def _prepare(trust: Trust, citizen: IssuedCitizen, tmp_path: Path) -> Prepared:
    return trust.prepare(
        make_pdf(tmp_path / "in.pdf", pages=3), tmp_path / "work", citizen.der, level=Level.B_B
    )


def _finish(trust: Trust, citizen: IssuedCitizen, prepared: Prepared, out: Path) -> Path:
    return trust.finish(prepared, sign_digest(citizen, prepared), out, timestamper=None)


def _settled(prepared: Prepared) -> Path:
    """The draft of ``prepared``, once its thread has written it."""
    state = _draft._drafts[str(prepared.prepared_path)]
    state.wait()
    return state.path


def _drafts(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(_draft.SUFFIX))


def _valid(nss_db: str, out: Path) -> None:
    report = pdfsig(nss_db, out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Total document signed" in report[0]


def test_the_finish_takes_the_draft_and_leaves_nothing(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path)
    draft = _settled(prepared)
    assert _drafts(prepared.prepared_path.parent) == [draft]
    inode = draft.stat().st_ino
    taken: list[int] = []
    real_take = _draft.take

    def take(update: Path, part: Path) -> object:
        result = real_take(update, part)
        if result is not None:
            taken.append(os.fstat(result[0].fileno()).st_ino)
        return result

    monkeypatch.setattr(_draft, "take", take)
    out = _finish(trust, citizen, Prepared.from_bytes(prepared.to_bytes()), tmp_path / "out.pdf")
    assert taken == [inode] and out.stat().st_ino == inode
    assert _drafts(prepared.prepared_path.parent) == []
    _valid(nss_db, out)
    # A second finish of the same state has no draft: it copies, and is as valid.
    again = _finish(trust, citizen, prepared, tmp_path / "again.pdf")
    assert taken == [inode] and again.stat().st_ino != inode
    _valid(nss_db, again)


def test_another_process_copies_and_drops_nothing_it_does_not_know(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path)
    draft = _settled(prepared)
    taken = _draft.take(prepared.prepared_path, tmp_path / "elsewhere")  # as if this process had restarted
    assert taken is not None
    taken[0].close()
    (tmp_path / "elsewhere").rename(draft)
    out = _finish(trust, citizen, prepared, tmp_path / "out.pdf")
    assert out.stat().st_ino != draft.stat().st_ino
    _valid(nss_db, out)


def test_a_draft_replaced_on_disk_is_not_used(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    citizen = signers["p256"]
    prepared = _prepare(trust, citizen, tmp_path)
    draft = _settled(prepared)
    # Same size, other bytes, other inode: not the draft this process wrote.
    size = draft.stat().st_size
    draft.unlink()
    draft.write_bytes(b"\0" * size)
    out = _finish(trust, citizen, prepared, tmp_path / "out.pdf")
    _valid(nss_db, out)
    assert _drafts(prepared.prepared_path.parent) == []


def test_a_draft_that_failed_is_not_used(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    citizen = signers["p256"]
    source = make_pdf(tmp_path / "in.pdf")
    update = tmp_path / "update.pdf"
    update.write_bytes(b"update")
    broken = _draft.Draft(source, tmp_path, source_size=source.stat().st_size + 1)  # the size is wrong
    broken.complete(update, size=source.stat().st_size + 7)
    assert _draft.take(update, tmp_path / "part") is None
    assert _drafts(tmp_path) == [] and not (tmp_path / "part").exists()
    prepared = _prepare(trust, citizen, tmp_path)
    _valid(nss_db, _finish(trust, citizen, prepared, tmp_path / "out.pdf"))


def test_an_abandoned_draft_is_removed_before_the_prepare_step_returns(tmp_path: Path) -> None:
    source = make_pdf(tmp_path / "in.pdf")
    draft = _draft.Draft(source, tmp_path, source_size=source.stat().st_size)
    draft.abandon()
    assert _drafts(tmp_path) == []


def test_old_drafts_of_a_crashed_process_are_swept(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    old, recent = workdir / f".old{_draft.SUFFIX}", workdir / f".recent{_draft.SUFFIX}"
    old.write_bytes(b"left by a crash")
    recent.write_bytes(b"another instance's")
    past = time.time() - _draft.LIFETIME - 60
    os.utime(old, (past, past))
    monkeypatch.setattr(_draft, "_scanned", {})
    source = make_pdf(tmp_path / "in.pdf")
    prepared = run(
        async_prepare(
            source, workdir, signer_certificate=signers["p256"].der, chain=trust.chain, level=Level.B_B
        )
    )
    _draft.discard(prepared.prepared_path)
    for _ in range(100):  # the scan runs in the draft's thread
        if not old.exists():
            break
        time.sleep(0.05)
    assert not old.exists() and recent.exists()
