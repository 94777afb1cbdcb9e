"""Server-side time and peak memory per PAdES signature, beside pyHanko's default signer.

For PDFs of about 1, 10 and 100 MB (generated once into a cache directory: pages of
compressed text plus a noise image per page, so the size is real page data spread over
many objects, like a scanned document), measured in the same run:

* ours B-B / B-LTA: ``signing.async_prepare`` + ``async_finish``, in process, with our real
  TSA, OCSP responder and CRLs (as ``tests/signing/conftest.py`` builds them) and a P-256
  signing certificate from our Citizen CA. The citizen's approval is replaced by an ECDSA
  signature with the local key, made between the two steps and not timed. As in the
  service's single-signer flow, the finish consumes the upload (``consume_source``): each
  signature gets its own durable copy of the document (copied and ``fsync``-ed before the
  clock starts, as the upload was before signing started), which becomes the output;
* pyHanko default B-B: ``PdfSigner.sign_pdf`` with ``signers.SimpleSigner`` and the same
  key and certificate, as pyHanko's documentation shows it (``IncrementalPdfFileWriter``
  over the open file, the result in memory, then written to a file);
* the reference: ``hashlib.sha256`` over 99 MB in memory.

Every measurement runs in a fresh child process: a warm-up signature of the smallest
measured document first (imports, caches, and the allocator's first buffers of that
size, as in a process that has served signatures before; a one-page PDF left the
first-use costs of the megabyte buffers in the timed runs of 1 MB, about a millisecond
of ours), then ``--repeat`` timed signatures of the document. Time is the
median; peak memory is the child's peak RSS (VmHWM, reset just before) during the runs minus its RSS before
the first timed run, so imports and the trust services do not count. Goals (issue 5):
B-B on 1 MB at least 4x faster than the default; the extra time from 1 MB to 100 MB at
most twice SHA-256 over 99 MB; the peak memory for 100 MB below half of the default's.

    .venv/bin/python bench/bench_signing.py [--repeat 5] [--rounds 1] [--sizes 1,10,100] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _harness as h

MB = 1 << 20
SPEEDUP_GOAL = 4.0
SLOPE_GOAL = 2.0
MEMORY_GOAL = 0.5
PAGE_IMAGE = 100 * 1024
"""Bytes of image data per page: about a 150 dpi greyscale scan, compressed."""
SCENARIOS = ("default B-B", "ours B-B", "ours B-LTA")
CACHE = Path(tempfile.gettempdir()) / "eid-bench-signing-pdfs"


# --------------------------------------------------------------------------- documents


def make_document(path: Path, megabytes: int, *, seed: int = 5) -> Path:
    """A PDF of about ``megabytes`` MB: A4 pages, each with a Flate text stream and a
    Flate greyscale noise image (incompressible, so the bytes are real). Objects are
    written straight to the file with a classic cross-reference table; a page tree of
    up to 64 kids per node, as producers write it."""
    rng = random.Random(seed)
    pages = max(1, round(megabytes * MB / (PAGE_IMAGE + 2200)))
    offsets: dict[int, int] = {}
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:

        def put(number: int, body: bytes, stream: bytes | None = None) -> None:
            offsets[number] = out.tell()
            out.write(b"%d 0 obj\n" % number + body)
            if stream is not None:
                out.write(b"\nstream\n" + stream + b"\nendstream")
            out.write(b"\nendobj\n")

        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        catalog, root_pages, font = 1, 2, 3
        put(font, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        next_number = 4
        groups = [list(range(i, min(i + 64, pages))) for i in range(0, pages, 64)]
        group_numbers = []
        for group in groups:
            group_number = next_number
            next_number += 1
            group_numbers.append(group_number)
            kids = []
            for index in group:
                page, content, image = next_number, next_number + 1, next_number + 2
                next_number += 3
                kids.append(page)
                lines = [
                    f"BT /F1 10 Tf 56 {800 - 14 * n} Td (Page {index + 1}, line {n}: " for n in range(30)
                ]
                text = "".join(f"{line}{rng.getrandbits(128):032x}) Tj ET\n" for line in lines)
                text += "q 480 320 56 60 cm /Im0 Do Q\n"
                data = zlib.compress(text.encode(), 6)
                put(content, b"<< /Length %d /Filter /FlateDecode >>" % len(data), data)
                raw = rng.randbytes(PAGE_IMAGE)
                side = int(PAGE_IMAGE**0.5)
                pixels = zlib.compress(raw[: side * side], 1)
                put(
                    image,
                    b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                    b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>" % (side, side, len(pixels)),
                    pixels,
                )
                put(
                    page,
                    b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                    b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im0 %d 0 R >> >> >>"
                    % (group_number, content, font, image),
                )
            refs = b" ".join(b"%d 0 R" % kid for kid in kids)
            put(
                group_number,
                b"<< /Type /Pages /Parent %d 0 R /Count %d /Kids [%s] >>" % (root_pages, len(kids), refs),
            )
        refs = b" ".join(b"%d 0 R" % number for number in group_numbers)
        put(root_pages, b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, refs))
        put(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % root_pages)
        info = next_number
        put(info, b"<< /Producer (eid bench_signing.py) /Title (Benchmark %d MB) >>" % megabytes)
        size = info + 1
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
        out.write(b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size)))
        doc_id = hashlib.md5(str(megabytes).encode()).hexdigest().encode()  # noqa: S324 - an ID, not security
        out.write(
            b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, catalog, info, doc_id, doc_id, xref)
        )
    tmp.replace(path)
    return path


def documents(cache: Path, sizes: list[int]) -> dict[int, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    found = {}
    for size in [0, *sizes]:
        path = cache / f"document-{size}mb-v1.pdf"
        if not path.exists():
            h.log(f"generating {path} ...")
            make_document(path, size)
        found[size] = path
    return found


# --------------------------------------------------------------------------- set-up


def prepare_pki(workdir: Path) -> dict[str, str]:
    """``eid init`` in ``workdir/data``, a P-256 signing certificate from our Citizen CA,
    and its key in a PEM file: what every child process needs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlmodel import Session

    from api import db
    from api.services import init_service, open_keystore, pki_config
    from keys.issuance import Purpose, issue_citizen_certificate
    from keys.pki import load
    from keys.profiles import CitizenSubject

    settings = _settings(workdir / "data")
    init_service(settings)
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    engine = db.make_engine(settings.resolved_database_url)
    keystore = open_keystore(settings)
    try:
        with Session(engine) as session:
            pki = load(session, keystore, pki_config(settings))
            subject = CitizenSubject(
                country="EE", given_name="Mari-Liis", family_name="Männik", personal_code="49403136526"
            )
            record = issue_citizen_certificate(
                session, keystore, pki, subject=subject, purpose=Purpose.SIGNING, public_key_der=spki
            )
            assert record.der is not None
            (workdir / "signer.der").write_bytes(record.der)
    finally:
        keystore.close()
        engine.dispose()
    (workdir / "signer.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {"data_dir": str(workdir / "data"), "workdir": str(workdir)}


def _settings(data_dir: Path) -> Any:
    from api.settings import Settings

    return Settings(
        data_dir=data_dir,
        public_url="http://127.0.0.1:9",
        keystore={"passphrase": h.PASSPHRASE},  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )


# --------------------------------------------------------------------------- children


@dataclass(frozen=True)
class Result:
    scenario: str
    size: int
    seconds: list[float]
    prepare: list[float]
    cpu: list[float]
    peak_mb: float

    def merge(self, other: Result) -> Result:
        return Result(
            self.scenario,
            self.size,
            self.seconds + other.seconds,
            self.prepare + other.prepare,
            self.cpu + other.cpu,
            max(self.peak_mb, other.peak_mb),
        )


def run_child(
    setup: dict[str, str], scenario: str, size: int, document: Path, warmup: Path, repeat: int
) -> Result:
    job = {
        "setup": setup,
        "scenario": scenario,
        "document": str(document),
        "warmup": str(warmup),
        "repeat": repeat,
    }
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=h.BENCH_DIR,
    )
    if done.returncode != 0:
        raise h.BenchError(f"{scenario} on {size} MB failed ({done.returncode}):\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(scenario, size, answer["seconds"], answer["prepare"], answer["cpu"], answer["peak_mb"])


def child(job: dict[str, Any]) -> None:
    """One scenario in this (fresh) process; prints one JSON line."""
    signer = Signer(Path(job["setup"]["workdir"]), _settings(Path(job["setup"]["data_dir"])), job["scenario"])
    try:
        signer.sign(Path(job["warmup"]))
        before = _reset_peak()
        seconds, prepare, cpu = [], [], []
        for _ in range(job["repeat"]):
            used = _cpu()
            total, first = signer.sign(Path(job["document"]))
            cpu.append(_cpu() - used)  # includes the untimed cleanup: an upper bound
            seconds.append(total)
            prepare.append(first)
        after = _memory("VmHWM")
    finally:
        signer.close()
    print(
        json.dumps({"seconds": seconds, "prepare": prepare, "cpu": cpu, "peak_mb": (after - before) / 1024})
    )


def _cpu() -> float:
    """CPU seconds of this process, all threads, user and system."""
    times = os.times()
    return times.user + times.system


class Signer:
    """One scenario's signer in a child process: our trust services in process, the key."""

    def __init__(self, workdir: Path, settings: Any, scenario: str) -> None:
        import asyncio

        from asn1crypto import keys as asn1_keys
        from asn1crypto import x509
        from cryptography.hazmat.primitives import serialization
        from pyhanko.sign import signers
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        from api.services import Services
        from api.signing_flow import revocation_source
        from keys.models import utcnow
        from signing import InProcessTimeStamper

        self.scenario, self.workdir = scenario, workdir / f"run-{os.getpid()}"
        self.workdir.mkdir()
        # The service's own trust services and wiring: the OCSP responder and its status
        # lookup, the TSA, and the revocation source the signing flow finishes with.
        self.services = Services.start(settings)
        pki = self.services.pki
        self.timestamper = InProcessTimeStamper(lambda der: self.services.tsa.respond(der, now=utcnow()).der)
        self.revocation = revocation_source(self.services)
        ca = bytes(pki.citizen_ca.certificate.dump())
        self.cert_der, self.chain = (workdir / "signer.der").read_bytes(), [ca]
        key_pem = (workdir / "signer.key").read_bytes()
        self.key = serialization.load_pem_private_key(key_pem, password=None)
        pkcs8 = self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.simple = signers.SimpleSigner(
            signing_cert=x509.Certificate.load(self.cert_der),
            signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
            cert_registry=SimpleCertificateStore.from_certs([x509.Certificate.load(ca)]),
        )
        self.loop = asyncio.new_event_loop()

    def sign(self, document: Path) -> tuple[float, float]:
        """Sign ``document`` once; (total seconds, seconds of the prepare step)."""
        out = self.workdir / "out.pdf"
        try:
            if self.scenario == "default B-B":
                start = time.perf_counter()
                self._default(document, out)
                return time.perf_counter() - start, 0.0
            return self.loop.run_until_complete(self._ours(document, out))
        finally:
            for leftover in self.workdir.iterdir():
                leftover.unlink()

    def _default(self, document: Path, out: Path) -> None:
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import fields, signers

        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )
        with document.open("rb") as stream:
            signed = signers.PdfSigner(meta, signer=self.simple).sign_pdf(IncrementalPdfFileWriter(stream))
        out.write_bytes(signed.getbuffer())

    async def _ours(self, document: Path, out: Path) -> tuple[float, float]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        from signing import async_finish, async_prepare

        level = self.scenario.split()[-1]
        upload = _private_copy(document, self.workdir / "upload.pdf")  # not timed: the upload
        start = time.perf_counter()
        prepared = await async_prepare(
            upload,
            self.workdir,
            signer_certificate=self.cert_der,
            chain=self.chain,
            level=level,
            consume_source=True,
        )
        prepared_at = time.perf_counter()
        signature = self.key.sign(prepared.digest_to_sign, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # type: ignore[union-attr, call-arg]
        resumed_at = time.perf_counter()
        await async_finish(
            prepared,
            signature,
            out=out,
            timestamper=self.timestamper,
            validation=self.revocation,
            consume_source=True,
        )
        end = time.perf_counter()
        return (prepared_at - start) + (end - resumed_at), prepared_at - start

    def close(self) -> None:
        self.loop.close()
        self.services.close()
        self.workdir.rmdir()


def _private_copy(document: Path, target: Path) -> Path:
    """A durable copy of ``document`` at ``target``, as ``BlobStore`` stores an upload."""
    with document.open("rb") as source, target.open("wb") as copy:
        shutil.copyfileobj(source, copy, MB)
        copy.flush()
        os.fsync(copy.fileno())
    return target


def _memory(field: str) -> int:
    """A ``/proc/self/status`` memory figure in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise h.BenchError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux 4.0+); the current RSS in KiB.
    The set-up (the key store's scrypt, the PKI) peaks far above what signing needs, so
    ``ru_maxrss`` alone would hide the signing's own peak."""
    Path("/proc/self/clear_refs").write_text("5")
    return _memory("VmRSS")


# --------------------------------------------------------------------------- report


def sha256_seconds(megabytes: int, repeat: int = 5) -> float:
    data = os.urandom(megabytes * MB)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(
    results: dict[tuple[str, int], Result], sha: float, sizes: list[int], repeat: int, rounds: int
) -> tuple[str, bool]:
    med = {key: statistics.median(r.seconds) for key, r in results.items()}
    lines = [
        "#### Time and peak memory per signature",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {rounds} round(s) of {repeat} "
        "signatures per cell, each in a fresh process; time: median wall clock; CPU time: median, "
        "all threads; peak memory: peak RSS (VmHWM) during the timed runs minus the RSS before them",
        "",
        "| document | scenario | time | of which prepare | CPU time | vs default B-B | peak memory |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        base = med.get(("default B-B", size))
        for scenario in SCENARIOS:
            r = results.get((scenario, size))
            if r is None:
                continue
            t = med[(scenario, size)]
            prep = f"{statistics.median(r.prepare) * 1000:.0f} ms" if scenario.startswith("ours") else ""
            ratio = f"{base / t:.1f}x faster" if base and scenario != "default B-B" else ""
            cpu = statistics.median(r.cpu) * 1000
            lines.append(
                f"| {size} MB | {scenario} | {t * 1000:.0f} ms | {prep} | {cpu:.0f} ms | {ratio} | {r.peak_mb:.0f} MB |"
            )
    lines += ["", f"Reference: SHA-256 over 99 MB in memory: {sha * 1000:.0f} ms.", ""]
    lines += ["| goal | measured | target | result |", "|---|---:|---:|---|"]
    ok = True

    def goal(name: str, measured: str, target: str, passed: bool) -> None:
        nonlocal ok
        ok = ok and passed
        lines.append(f"| {name} | {measured} | {target} | {'PASS' if passed else 'FAIL'} |")

    if ("default B-B", 1) in med and ("ours B-B", 1) in med:
        speedup = med[("default B-B", 1)] / med[("ours B-B", 1)]
        goal(
            "B-B, 1 MB: faster than the default",
            f"{speedup:.1f}x",
            f">= {SPEEDUP_GOAL:.0f}x",
            speedup >= SPEEDUP_GOAL,
        )
    for scenario in ("ours B-B", "ours B-LTA"):
        if (scenario, 1) in med and (scenario, 100) in med:
            extra = med[(scenario, 100)] - med[(scenario, 1)]
            goal(
                f"{scenario[5:]}: extra time 1 MB -> 100 MB",
                f"{extra * 1000:.0f} ms = {extra / sha:.1f}x SHA-256",
                f"<= {SLOPE_GOAL:.0f}x SHA-256 ({SLOPE_GOAL * sha * 1000:.0f} ms)",
                extra <= SLOPE_GOAL * sha,
            )
    for scenario in ("ours B-B", "ours B-LTA"):
        if (scenario, 100) in results and ("default B-B", 100) in results:
            ours, theirs = results[(scenario, 100)].peak_mb, results[("default B-B", 100)].peak_mb
            goal(
                f"{scenario[5:]}: peak memory, 100 MB",
                f"{ours:.0f} MB = {ours / theirs:.0%} of default",
                f"< {MEMORY_GOAL:.0%} of default ({theirs:.0f} MB)",
                ours < MEMORY_GOAL * theirs,
            )
    return "\n".join(lines), ok


def bench(
    repeat: int, sizes: list[int], cache: Path, rounds: int = 1, keep: bool = False
) -> tuple[str, bool]:
    h.log("signing benchmark")
    docs = documents(cache, sizes)
    with h.workspace(keep) as workdir:
        h.log(f"preparing a PKI in {workdir} ...")
        setup = prepare_pki(workdir)
        shas, results = [], {}
        for number in range(1, rounds + 1):
            shas.append(sha256_seconds(99))
            for size in sizes:
                for scenario in SCENARIOS:
                    h.log(f"  round {number}: {scenario}, {size} MB ...")
                    result = run_child(setup, scenario, size, docs[size], docs[min(sizes)], repeat)
                    known = results.get((scenario, size))
                    results[(scenario, size)] = known.merge(result) if known else result
    return report(results, statistics.median(shas), sizes, repeat, rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed signatures per cell (default 5)")
    parser.add_argument("--sizes", default="1,10,100", help="document sizes in MB (default 1,10,100)")
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help=f"where the PDFs are kept (default {CACHE})"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every cell (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.repeat < 1 or args.rounds < 1 or not sizes or min(sizes) < 1:
        raise SystemExit("--repeat, --rounds and every size must be at least 1")
    return h.exit_status(lambda: bench(args.repeat, sizes, args.cache, args.rounds, args.keep))


if __name__ == "__main__":
    sys.exit(main())
