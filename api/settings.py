"""All configuration, from ``EID_*`` environment variables (and an optional ``.env``).

One ``Settings`` class made of small per-area sections; nested fields use ``__``, e.g.
``EID_KEYSTORE__BACKEND=pkcs11``. Unknown keys are rejected, placeholder secrets are
refused outside development mode. Every field has a description; ``docs/configuration.md``
is generated from them (``eid config docs``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
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
