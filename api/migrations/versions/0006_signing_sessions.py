"""Signing sessions: an uploaded document, its prepared signature and the approval.

Revision ID: 0006_signing_sessions
Revises: 0005_signing_keys
Create Date: 2026-11-22 20:31:46.923141
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_signing_sessions"
down_revision: str | None = "0005_signing_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("initiator", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("document_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("source_blob", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prepared", sa.LargeBinary(), nullable=False),
        sa.Column("approval_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("signed_blob", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("failure_reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("delete_after", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("signing_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signing_session_approval_id"), ["approval_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_signing_session_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_signing_session_delete_after"), ["delete_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_signing_session_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signing_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signing_session_state"))
        batch_op.drop_index(batch_op.f("ix_signing_session_delete_after"))
        batch_op.drop_index(batch_op.f("ix_signing_session_citizen_id"))
        batch_op.drop_index(batch_op.f("ix_signing_session_approval_id"))

    op.drop_table("signing_session")
