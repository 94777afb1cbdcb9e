"""QR documents: the status (valid or revoked) of every document that carries a QR token.

Revision ID: 0007_qr_documents
Revises: 0006_signing_sessions
Create Date: 2026-11-22 21:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_qr_documents"
down_revision: str | None = "0006_signing_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qr_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("document_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("document_length", sa.Integer(), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("organisation", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("issued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revocation_reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id"),
    )
    with op.batch_alter_table("qr_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_qr_document_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("qr_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_qr_document_state"))

    op.drop_table("qr_document")
