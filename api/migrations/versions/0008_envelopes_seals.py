"""Envelopes (several signers), organisations' sealed documents, Idempotency-Key records.

Revision ID: 0008_envelopes_seals
Revises: 0007_qr_documents
Create Date: 2026-11-22 21:35:16.980423
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_envelopes_seals"
down_revision: str | None = "0007_qr_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("principal", "key"),
    )
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_record_created_at"), ["created_at"], unique=False)

    op.create_table(
        "sealed_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("document_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("certificate_serial", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("qr_document_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("signed_blob", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("delete_after", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("sealed_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sealed_document_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sealed_document_delete_after"), ["delete_after"], unique=False)

    op.create_table(
        "signing_envelope",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("initiator", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("document_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("ordered", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("source_blob", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("current_blob", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("busy_session", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("delete_after", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("signing_envelope", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signing_envelope_delete_after"), ["delete_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_signing_envelope_state"), ["state"], unique=False)

    op.create_table(
        "envelope_signer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("envelope_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("signed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
        ),
        sa.ForeignKeyConstraint(
            ["envelope_id"],
            ["signing_envelope.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("envelope_id", "citizen_id"),
    )
    with op.batch_alter_table("envelope_signer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_envelope_signer_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_envelope_signer_envelope_id"), ["envelope_id"], unique=False)

    with op.batch_alter_table("signing_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("envelope_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_signing_session_envelope_id"), ["envelope_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_signing_session_envelope_id", "signing_envelope", ["envelope_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("signing_session", schema=None) as batch_op:
        batch_op.drop_constraint("fk_signing_session_envelope_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_signing_session_envelope_id"))
        batch_op.drop_column("envelope_id")

    with op.batch_alter_table("envelope_signer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_envelope_signer_envelope_id"))
        batch_op.drop_index(batch_op.f("ix_envelope_signer_citizen_id"))

    op.drop_table("envelope_signer")
    with op.batch_alter_table("signing_envelope", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signing_envelope_state"))
        batch_op.drop_index(batch_op.f("ix_signing_envelope_delete_after"))

    op.drop_table("signing_envelope")
    with op.batch_alter_table("sealed_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sealed_document_delete_after"))
        batch_op.drop_index(batch_op.f("ix_sealed_document_client_id"))

    op.drop_table("sealed_document")
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_record_created_at"))

    op.drop_table("idempotency_record")
