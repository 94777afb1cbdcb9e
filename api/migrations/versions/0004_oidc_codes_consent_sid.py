"""OpenID Connect: parked authorization requests, codes, consents, and a public session id.

Revision ID: 0004_oidc_codes_consent_sid
Revises: 0003_oauth_clients_tokens
Create Date: 2026-11-22 19:29:57.042498
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_oidc_codes_consent_sid"
down_revision: str | None = "0003_oauth_clients_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_authorization_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("params_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_table(
        "oauth_authorization_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("code_challenge", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("code_challenge_method", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("claims_json", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("auth_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("acr", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("amr", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("grant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_authorization_code_client_id"), ["client_id"], unique=False
        )

    op.create_table(
        "oauth_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("granted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("oauth_consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_consent_citizen_id"), ["citizen_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_consent_client_id"), ["client_id"], unique=False)

    with op.batch_alter_table("login_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch_op.create_unique_constraint("uq_login_session_public_id", ["public_id"])


def downgrade() -> None:
    with op.batch_alter_table("login_session", schema=None) as batch_op:
        batch_op.drop_constraint("uq_login_session_public_id", type_="unique")
        batch_op.drop_column("public_id")

    with op.batch_alter_table("oauth_consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_consent_client_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_consent_citizen_id"))

    op.drop_table("oauth_consent")
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_client_id"))

    op.drop_table("oauth_authorization_code")
    op.drop_table("oauth_authorization_request")
