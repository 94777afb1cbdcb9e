"""Validations per second of a signed PDF, and peak memory on a 100 MB one.

Measured in process on a throw-away data directory (no server: the figure is the
validator, not HTTP), in the same run:

* pyHanko's plain ``validate_pdf_signature`` (our root as the only anchor, no fetching):
  signature, chain and DSS revocation data, no AdES processes, no LTA, no report;
* ``verification.async_validate_document``: our whole check table, pyHanko's AdES
  processes (with time, and long-term for B-LTA) and the report;
* the same through ``WorkerPool`` (one worker process): what the API does.

All on one ~1 MB PAdES B-LTA PDF with one signature, signed by the service. Every
validation must come back TOTAL-PASSED, or there are no figures. Then a ~100 MB B-LTA PDF
is validated in a fresh worker and the worker's peak resident memory
(``ru_maxrss`` in the child) is compared with the file's size. Goal: below it.

    .venv/bin/python bench/bench_verify.py [--seconds 10] [--big-mb 100]

Takes about a minute (signing the 100 MB file is most of it); part of run_all.py (`make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness as h

sys.path.insert(0, str(h.BENCH_DIR.parent))


def _pdf(path: Path, megabytes: float) -> Path:
    """One A4 page of text, plus an image XObject of random bytes (incompressible) drawn on
    it, so the file is ``megabytes`` big and the bytes are really part of the page."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    writer = PdfFileWriter()
    side = max(1, int((megabytes * 1024 * 1024 / 3) ** 0.5))
    image = generic.StreamObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Image"),
            generic.pdf_name("/Width"): generic.NumberObject(side),
            generic.pdf_name("/Height"): generic.NumberObject(side),
            generic.pdf_name("/ColorSpace"): generic.pdf_name("/DeviceRGB"),
            generic.pdf_name("/BitsPerComponent"): generic.NumberObject(8),
        },
        stream_data=os.urandom(side * side * 3),
    )
    resources = generic.DictionaryObject(
        {
            generic.pdf_name("/XObject"): generic.DictionaryObject(
                {generic.pdf_name("/Im1"): writer.add_object(image)}
            )
        }
    )
    content = writer.add_object(generic.StreamObject(stream_data=b"q 400 0 0 400 100 300 cm /Im1 Do Q"))
    writer.insert_page(PageObject(contents=content, media_box=(0, 0, 595, 842), resources=resources))
    with path.open("wb") as out:
        writer.write(out)
    return path


class World:
    """The service's PKI, TSA and OCSP responder in process, and one signing citizen."""

    def __init__(self, workdir: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from sqlmodel import Session

        from api import db
        from api.services import open_keystore, pki_config
        from keys.issuance import Purpose, issue_citizen_certificate
        from keys.ocsp import OcspResponder
        from keys.pki import load
        from keys.profiles import CitizenSubject
        from keys.tsa import TimeStampAuthority

        service = h.prepare_service(workdir)
        settings = service.settings()
        self.engine = db.make_engine(settings.resolved_database_url)
        self.keystore = open_keystore(settings)
        self.session = Session(self.engine)
        self.pki = load(self.session, self.keystore, pki_config(settings))
        self.key = ec.generate_private_key(ec.SECP256R1())
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        subject = CitizenSubject(
            country="EE", given_name="Mari-Liis", family_name="Männik", personal_code="49403136526"
        )
        record = issue_citizen_certificate(
            self.session,
            self.keystore,
            self.pki,
            subject=subject,
            purpose=Purpose.SIGNING,
            public_key_der=spki,
        )
        assert record.der is not None
        self.certificate = record.der
        self.ocsp = OcspResponder(
            issuer=self.pki.citizen_ca,
            signer=self.pki.ocsp_responder,
            keystore=self.keystore,
            lookup=self._status,
        )
        self.tsa = TimeStampAuthority(
            identity=self.pki.tsa, keystore=self.keystore, policy=self.pki.config.policies.tsa
        )

    def _status(self, serial: str) -> Any:
        from keys.ocsp import StatusRow

        return StatusRow(state="issued", revoked_at=None, reason=None, revision=0)

    @property
    def root(self) -> bytes:
        return bytes(self.pki.root.certificate.dump())

    def sign(self, source: Path, out: Path) -> Path:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        from keys import crl
        from keys.models import utcnow
        from signing import InProcessRevocation, InProcessTimeStamper, Level, async_finish, async_prepare

        pki = self.pki
        revocation = InProcessRevocation(
            trust_roots=(self.root,),
            certificates=tuple(
                bytes(c.certificate.dump()) for c in (pki.citizen_ca, pki.tsa, pki.ocsp_responder)
            ),
            ocsp_issuers=(bytes(pki.citizen_ca.certificate.dump()),),
            ask_ocsp=lambda der: self.ocsp.respond(der, now=utcnow()).der,
            crls=lambda: [
                crl.current(self.session, self.keystore, i).der for i in (pki.root, pki.citizen_ca)
            ],
        )
        workdir = out.parent / "work"
        workdir.mkdir(exist_ok=True)
        chain = [bytes(pki.citizen_ca.certificate.dump()), self.root]

        async def both() -> Path:
            prepared = await async_prepare(
                source, workdir, signer_certificate=self.certificate, chain=chain, level=Level.B_LTA
            )
            signature = self.key.sign(prepared.digest_to_sign, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            timestamper = InProcessTimeStamper(lambda der: self.tsa.respond(der, now=utcnow()).der)
            return await async_finish(
                prepared, signature, out=out, timestamper=timestamper, validation=revocation
            )

        return asyncio.run(both())

    def trust(self) -> Any:
        from verification import build_trust

        pki = self.pki
        own = (pki.citizen_ca, pki.tsa, pki.ocsp_responder, pki.qr_seal)
        return build_trust((self.root,), tuple(bytes(c.certificate.dump()) for c in own))

    def close(self) -> None:
        self.session.close()
        self.keystore.close()
        self.engine.dispose()


def _rate(name: str, seconds: float, once: Callable[[], None]) -> tuple[str, float, int]:
    once()  # warm-up, and the check that it passes
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        count += 1
    elapsed = time.perf_counter() - start
    return name, count / elapsed, count


def bench(seconds: float = 10.0, big_mb: float = 100.0, keep: bool = False) -> tuple[str, bool]:
    """Both measurements; (the tables as Markdown, whether the memory goal was met)."""
    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from verification import Indication, Limits, WorkerPool, async_validate_document

    with h.workspace(keep) as workdir:
        h.log("preparing a data directory and signing the documents ...")
        world = World(workdir)
        try:
            small = world.sign(_pdf(workdir / "small.pdf", 1.0), workdir / "small-signed.pdf")
            trust = world.trust()
            root = x509.Certificate.load(world.root)

            def plain() -> None:
                with small.open("rb") as stream:
                    signature = PdfFileReader(stream).embedded_regular_signatures[0]
                    context = ValidationContext(trust_roots=[root], allow_fetching=False)
                    if not validate_pdf_signature(signature, context).bottom_line:
                        raise h.BenchError("pyHanko's validate_pdf_signature did not pass the document")

            def ours() -> None:
                report = asyncio.run(async_validate_document(small, trust=trust))
                if report.indication is not Indication.TOTAL_PASSED:
                    raise h.BenchError("our validation did not pass the document:\n" + report.to_json())

            pool = WorkerPool(trust=trust, limits=Limits(workers=1, timeout_seconds=60))

            def worker() -> None:
                report = asyncio.run(pool.async_validate(small))
                if report.indication is not Indication.TOTAL_PASSED:
                    raise h.BenchError("the worker did not pass the document:\n" + report.to_json())

            h.log(f"throughput, {seconds:g} s each ...")
            rows = [
                _rate("pyHanko validate_pdf_signature", seconds, plain),
                _rate("async_validate_document (ours)", seconds, ours),
                _rate("WorkerPool, 1 worker (API path)", seconds, worker),
            ]
            small_peak = pool.last_peak_kb or 0
            small_size = small.stat().st_size
            pool.close()

            h.log(f"signing a {big_mb:g} MB document ...")
            big = world.sign(_pdf(workdir / "big.pdf", big_mb), workdir / "big-signed.pdf")
            fresh = WorkerPool(trust=trust, limits=Limits(workers=1, timeout_seconds=600, memory_mb=4096))
            start = time.perf_counter()
            report = asyncio.run(fresh.async_validate(big))
            big_seconds = time.perf_counter() - start
            big_peak = fresh.last_peak_kb or 0
            idle_peak = fresh.idle_kb or 0
            big_size = big.stat().st_size
            fresh.close()
            if report.indication is not Indication.TOTAL_PASSED:
                raise h.BenchError("the big document did not pass:\n" + report.to_json())
        finally:
            world.close()

    base = rows[0][1]
    ok = big_peak * 1024 < big_size
    lines = [
        f"#### Validations per second of a {small_size / 2**20:.2f} MiB PAdES B-LTA PDF, one signature",
        "",
        "| path | validations/s | ms each | share of pyHanko |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {rate:.1f} | {1000 / rate:.1f} | {rate / base:.0%} |" for name, rate, _count in rows),
        "",
        f"#### Resident memory of the worker process, file {big_size / 2**20:.1f} MiB",
        "",
        "| state | VmRSS / VmHWM | goal | result |",
        "|---|---:|---:|---|",
        f"| fresh worker, libraries loaded | {idle_peak / 1024:.1f} MiB | | |",
        f"| peak validating the 1 MB document | {small_peak / 1024:.1f} MiB | | |",
        f"| peak validating the {big_mb:g} MB document ({big_seconds:.1f} s) | {big_peak / 1024:.1f} MiB "
        f"| < file size | {'PASS' if ok else 'FAIL'} |",
    ]
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Time per throughput scenario.")
    parser.add_argument("--big-mb", type=float, default=100.0, help="Size of the memory test document (MB).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    args = parser.parse_args()
    return h.exit_status(lambda: bench(args.seconds, args.big_mb, args.keep))


if __name__ == "__main__":
    sys.exit(main())
