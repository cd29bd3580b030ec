"""Which database errors mean "the store is down" rather than "this input is bad".

The MQTT ingester retries a batch that failed on an unavailable database (never
rejecting its messages) and rejects one that fails for any other reason; SQLAlchemy's
exception types stay here, in store/.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


def is_database_unavailable(error: BaseException) -> bool:
    """True for a lost or refused connection, a locked SQLite file, a timeout of the
    pool: errors that go away by retrying the same transaction later."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                              sa_exc.DisconnectionError))
