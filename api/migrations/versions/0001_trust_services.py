"""Trust services: certificates (with reserved serials), CRLs and the audit chain.

Revision ID: 0001_trust_services
Revises:
Create Date: 2026-11-22 19:01:00.023504
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001_trust_services"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("details", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("prev_hash"),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_action"), ["action"], unique=False)

    op.create_table(
        "certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("profile", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("not_before", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("not_after", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revocation_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_certificate_issuer"), ["issuer"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificate_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificate_profile"), ["profile"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificate_serial"), ["serial"], unique=True)
        batch_op.create_index(batch_op.f("ix_certificate_state"), ["state"], unique=False)

    op.create_table(
        "crl",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("this_update", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("next_update", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "number", name="uq_crl_issuer_number"),
    )
    with op.batch_alter_table("crl", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crl_issuer"), ["issuer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crl", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crl_issuer"))

    op.drop_table("crl")
    with op.batch_alter_table("certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_state"))
        batch_op.drop_index(batch_op.f("ix_certificate_serial"))
        batch_op.drop_index(batch_op.f("ix_certificate_profile"))
        batch_op.drop_index(batch_op.f("ix_certificate_owner"))
        batch_op.drop_index(batch_op.f("ix_certificate_issuer"))

    op.drop_table("certificate")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_action"))

    op.drop_table("audit_entry")
