"""The database: one engine per manager, created from settings (no import-time globals)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from flops_manager.db.models import Base

__all__ = ["Database"]


class Database:
    """Engine and session factory for one database URL; creates the tables if missing.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. `sqlite:////var/lib/flops/flops.db` or
        `postgresql+psycopg://flops@db/flops`.
    """

    def __init__(self, url: str) -> None:
        # The API runs sync routes and their session teardown on a pool of 40 threads; a
        # connection pool smaller than the requests in flight deadlocks under load (routes
        # wait for connections held by requests whose teardown waits for a thread). SQLite
        # connections are cheap, so it gets no pool at all; servers get a pool larger than
        # the thread pool.
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
            options["poolclass"] = NullPool
        else:
            options.update(pool_size=20, max_overflow=80, pool_timeout=60)
        self.engine: Engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        # create_all makes the indexes of new tables only; a database made by an older
        # manager gets the indexes added since.
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
