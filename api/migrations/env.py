"""Alembic environment: runs against the engine the caller put in ``config.attributes``."""

from alembic import context
from sqlmodel import SQLModel

import identity.models  # noqa: F401 - registers the tables
import identity.oauth.models  # noqa: F401
import keys.models  # noqa: F401
import signing.models  # noqa: F401
import verification.models  # noqa: F401

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
