"""Alembic environment: runs against the engine the caller put in ``config.attributes``."""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import identity.models  # noqa: F401 - registers the tables
import identity.oauth.models  # noqa: F401
import keys.models  # noqa: F401
import signing.models  # noqa: F401
import verification.models  # noqa: F401

# Instances of a new release started together each migrate at start-up: they take turns,
# and the later one finds the work done (it reads the schema's revision after its turn comes).
_PG_MIGRATION_LOCK = 0x6569_645F_6D69_6772  # "eid_migr"

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        # Python's sqlite3 would run each DDL statement on its own; one IMMEDIATE transaction
        # waits for the file's write lock and makes the whole upgrade atomic as well.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
