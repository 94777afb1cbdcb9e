"""All configuration, from ``EID_*`` environment variables (and an optional ``.env``).

One ``Settings`` class made of small per-area sections; nested fields use ``__``, e.g.
``EID_KEYSTORE__BACKEND=pkcs11``. Unknown keys are rejected, placeholder secrets are
refused outside development mode. Every field has a description; ``docs/configuration.md``
is generated from them (``eid config docs``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_PASSPHRASE = "development-only-passphrase"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyStoreSettings(_Section):
    backend: Literal["file", "pkcs11"] = Field(
        "file",
        description="Where the service keys live: `file` (encrypted PKCS#8 files) or `pkcs11` (an HSM).",
    )
    directory: Path | None = Field(
        None, description="Directory of the file key store. Default: `<data_dir>/keys`."
    )
    passphrase: SecretStr = Field(
        SecretStr(PLACEHOLDER_PASSPHRASE),
        description="Passphrase that encrypts the key files. Must be changed outside development.",
    )
    pkcs11_module: str = Field(
        "/usr/lib/softhsm/libsofthsm2.so", description="Path of the PKCS#11 module (`.so`)."
    )
    token_label: str = Field("eid-service", description="Label of the PKCS#11 token holding the keys.")
    pin: SecretStr = Field(SecretStr(""), description="User PIN of the PKCS#11 token.")


class PkiSettings(_Section):
    organisation: str = Field(
        "EID Demo Authority",
        description="Organisation name written into the service's certificates.",
    )
    country: str = Field(
        "EE", min_length=2, max_length=2, description="Country code of the service's certificates."
    )
    oid_arc: str | None = Field(
        None,
        pattern=r"^[0-2](\.(0|[1-9][0-9]{0,8}))+$",
        description="Your organisation's registered OID arc (e.g. 1.3.6.1.4.1.N). When set, "
        "certificates and time stamps also carry your own policy identifiers under it; "
        "without it they carry the standard ETSI ones only.",
    )
    certificate_base_url: str | None = Field(
        None,
        description="Base URL written into certificates (CRL distribution points, AIA). Default: "
        "EID_PUBLIC_URL. ETSI EN 319 412-2 wants http:// CRL URLs: set this to a plain-HTTP name "
        "of the service when EID_PUBLIC_URL is https.",
    )


class OcspSettings(_Section):
    validity_minutes: int = Field(
        15,
        ge=1,
        le=7 * 24 * 60,
        description="How long an OCSP response is valid (nextUpdate - thisUpdate).",
    )


class CrlSettings(_Section):
    validity_hours: int = Field(
        24,
        ge=1,
        le=24 * 30,
        description="How long a CRL is valid; a new one is published at half-time.",
    )


class TsaSettings(_Section):
    accuracy_ms: int = Field(
        1000, ge=1, le=60_000, description="Accuracy the TSA claims for its clock, in milliseconds."
    )


class WebEidSettings(_Section):
    extra_trust_anchors: Path | None = Field(
        None,
        description="Folder of CA certificates (PEM or DER) trusted for Web eID card login besides our own "
        "root, e.g. a national ID card root and its intermediates.",
    )
    check_foreign_revocation: bool = Field(
        True,
        description="Refuse cards of extra trust anchors, whose status the service cannot ask without "
        "fetching URLs from the card. Set false only to accept them without a revocation check.",
    )


class OidcSettings(_Section):
    dynamic_registration: bool = Field(
        True, description="Open dynamic client registration (RFC 7591); such clients always ask for consent."
    )
    sso_minutes: int = Field(
        15,
        ge=0,
        le=24 * 60,
        description="How long a login is reused for another service without a new approval.",
    )


class LimitSettings(_Section):
    protocol_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest OCSP or time-stamp request body accepted."
    )
    document_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="Largest PDF accepted for signing.")
    document_retention_hours: int = Field(
        24, ge=1, le=24 * 90, description="How long uploaded and signed documents are kept."
    )
    body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body of any route not listed as a document upload (those take "
        "EID_LIMITS__DOCUMENT_BYTES): bigger bodies get 413, by Content-Length or while streaming.",
    )


class LoggingSettings(_Section):
    format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object per line (for log shippers); `text`: for people."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")
    access_log: bool = Field(
        True, description="Log one line per request: request id, method, route, status, duration."
    )


def _per_minute(default: float) -> Any:
    return Field(default, gt=0, description="Tokens added to a client's bucket per minute.")


def _burst(default: int) -> Any:
    return Field(default, ge=1, description="Bucket size: requests a client may make at once.")


class RateRule(_Section):
    """A token bucket per client address: ``burst`` at once, then ``per_minute``."""

    per_minute: float = _per_minute(60)
    burst: int = _burst(10)


class LoginRate(RateRule):
    per_minute: float = _per_minute(30)
    burst: int = _burst(20)


class PollingRate(RateRule):
    per_minute: float = _per_minute(600)
    burst: int = _burst(120)


class EnrolmentRate(RateRule):
    per_minute: float = _per_minute(10)
    burst: int = _burst(5)


class AdminRate(RateRule):
    per_minute: float = _per_minute(600)
    burst: int = _burst(100)


class RateLimitSettings(_Section):
    enabled: bool = Field(True, description="Answer 429 to clients over a limit below.")
    login: LoginRate = Field(
        default_factory=LoginRate,
        description="Login starts per client address: app and card logins, authorization requests, PAR.",
    )
    polling: PollingRate = Field(
        default_factory=PollingRate,
        description="Approval polling per client address: login and signing status, the app's "
        "pending requests (the login page polls once a second).",
    )
    enrolment: EnrolmentRate = Field(
        default_factory=EnrolmentRate,
        description="Activation-code use (enrolment) per client address; keeps codes from being guessed.",
    )
    admin: AdminRate = Field(default_factory=AdminRate, description="Admin API calls per client address.")
    max_clients: int = Field(
        100_000,
        ge=100,
        description="Client addresses tracked per rule and process; the least recently seen are "
        "forgotten beyond this (memory bound).",
    )


class ProxySettings(_Section):
    trusted: str = Field(
        "",
        description="Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For/-Proto/-Host headers are believed, e.g. `10.0.0.0/8`. Empty: none are.",
    )

    @field_validator("trusted")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @property
    def networks(self) -> list[str]:
        return [part.strip() for part in self.trusted.split(",") if part.strip()]


class VerificationSettings(_Section):
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Worker processes that validate uploaded PDFs (validations at the same time).",
    )
    timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Wall-clock seconds one validation may take; then its worker is killed and the "
        "report says INDETERMINATE.",
    )
    memory_mb: int = Field(
        1024,
        ge=256,
        le=65536,
        description="Address-space cap (MiB) of each validation worker; a PDF needing more (a "
        "decompression bomb) is reported INDETERMINATE.",
    )
    extra_trust_anchors: Path | None = Field(
        None,
        description="Folder of CA certificates (PEM or DER) trusted for validating signatures besides "
        "our own root; self-signed ones become anchors, the others help build paths.",
    )
    trusted_list: Path | None = Field(
        None,
        description="Local file of an EU-style trusted list (ETSI TS 119 612 XML); the certificates of "
        "its granted services become trust anchors. It is read, never downloaded.",
    )


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="EID_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        frozen=True,
    )

    environment: Environment = Field(
        Environment.DEVELOPMENT,
        description="`development` allows placeholder secrets; `production` refuses them.",
    )
    data_dir: Path = Field(Path("var"), description="Where the database, keys and documents live.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL the service is reached at: the token issuer and the base of every "
        "URL written into certificates.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database. Default: SQLite file `<data_dir>/eid.sqlite3`. "
        "PostgreSQL: `postgresql+psycopg://user@host/db`.",
    )
    keystore: KeyStoreSettings = Field(default_factory=KeyStoreSettings, description="Key store.")
    pki: PkiSettings = Field(default_factory=PkiSettings, description="The service's PKI.")
    ocsp: OcspSettings = Field(default_factory=OcspSettings, description="OCSP responder.")
    crl: CrlSettings = Field(default_factory=CrlSettings, description="CRL publication.")
    tsa: TsaSettings = Field(default_factory=TsaSettings, description="Time-stamping authority.")
    web_eid: WebEidSettings = Field(default_factory=WebEidSettings, description="Web eID card login.")
    oidc: OidcSettings = Field(default_factory=OidcSettings, description="OpenID Connect provider.")
    limits: LimitSettings = Field(default_factory=LimitSettings, description="Request limits.")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logs.")
    rate_limits: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="Rate limits per client address."
    )
    proxy: ProxySettings = Field(default_factory=ProxySettings, description="Reverse proxies in front.")
    verification: VerificationSettings = Field(
        default_factory=VerificationSettings, description="Validation of uploaded signed PDFs."
    )

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.keystore.backend == "file" and (
                self.keystore.passphrase.get_secret_value() in ("", PLACEHOLDER_PASSPHRASE)
            ):
                raise ValueError("EID_KEYSTORE__PASSPHRASE must be set to a real secret in production")
            if self.keystore.backend == "pkcs11" and not self.keystore.pin.get_secret_value():
                raise ValueError("EID_KEYSTORE__PIN must be set when the key store is pkcs11")
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError("EID_PUBLIC_URL must start with http:// or https://")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'eid.sqlite3'}"

    @property
    def keystore_directory(self) -> Path:
        return self.keystore.directory or self.data_dir / "keys"
