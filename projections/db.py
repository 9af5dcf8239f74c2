"""Engine set-up: the same code on SQLite (default) and PostgreSQL."""

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from projections.analytics import create_views, drop_views
from projections.tables import metadata

# Connections kept open: as many as the API has requests reading at once, so a burst of
# requests reuses them instead of opening and closing connections per request.
POOL_SIZE = 32
POOL_OVERFLOW = 32
# On PostgreSQL each connection is a server process, and a default server takes 100: two
# services (API, projector) at 16 + 16 each leave room for analysts and maintenance.
PG_POOL_SIZE = 16
PG_POOL_OVERFLOW = 16


_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def _json_text(value: Any) -> str:
    return _json_encoder.encode(value).decode()


# The JSON columns' codec: msgspec rather than the standard library's json, which took a
# tenth of the projector's CPU (every row carries several JSON columns). Same values.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text,
                              "json_deserializer": _json_decoder.decode}


def _searched(value: Any) -> Any:
    return value.replace("\x00", "\x01") if isinstance(value, str) else value


def _nul_free_reads(_conn: Any, _cursor: Any, statement: str, parameters: Any,
                    _context: Any, executemany: bool) -> tuple[str, Any]:
    """PostgreSQL's text cannot hold U+0000, so a value searched for that holds one (an id
    in a URL, a filter) would fail the query: a 500 where SQLite answers "none". Nothing
    stored holds a control character (the API refuses them in every text it stores as a
    column), so such a value matches nothing, and orders the same against every stored
    text, with U+0001 in its place: the query runs and answers as on SQLite. Only reads:
    a write that holds one fails, as it should."""
    if executemany or statement.lstrip()[:6].upper() != "SELECT":
        return statement, parameters
    if isinstance(parameters, dict):
        return statement, {k: _searched(v) for k, v in parameters.items()}
    if isinstance(parameters, list | tuple):
        return statement, type(parameters)(_searched(v) for v in parameters)
    return statement, parameters


async def _asyncpg_connect(*args: Any, **kwargs: Any) -> Any:
    """asyncpg.connect, whose failures (a refused or timed-out socket, a server starting
    up or out of connections) become the DBAPI's OperationalError, as SQLite's "unable to
    open" is: callers tell "the database is away" (the API's 503, the projector's wait)
    from a bad statement by that one class, on either store. asyncpg raises the socket's
    own OSError, which SQLAlchemy would pass on unwrapped."""
    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    try:
        return await asyncpg.connect(*args, **kwargs)
    except Exception as exc:
        raise AsyncAdapt_asyncpg_dbapi.OperationalError(
            f"cannot connect to PostgreSQL: {exc!r}", exc) from exc


# A URL option of ours (``?search_path=jobledger_g2``): the schemas a connection sees, so a
# URL alone names a generation of the read models (projections.pg_generations). asyncpg
# takes no such keyword (SQLAlchemy passes the URL's query to asyncpg.connect as keywords,
# and asyncpg refuses unknown ones): it travels as a server setting of the connection.
SEARCH_PATH = "search_path"


def _asyncpg_args(parsed: URL) -> tuple[URL, dict[str, Any]]:
    """The URL without our option, and the connect arguments for asyncpg."""
    # async_creator_fn: the asyncpg dialect's own seam for the connect call (what
    # create_async_engine(async_creator=...) uses), given the URL's arguments.
    connect: dict[str, Any] = {"async_creator_fn": _asyncpg_connect}
    path = parsed.query.get(SEARCH_PATH)
    if path:
        connect["server_settings"] = {SEARCH_PATH: path if isinstance(path, str)
                                      else ",".join(path)}
    return parsed.difference_update_query([SEARCH_PATH]), connect


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    pool: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if parsed.get_backend_name() == "postgresql":
        connect: dict[str, Any] = {}
        if parsed.get_driver_name() == "asyncpg":
            parsed, connect = _asyncpg_args(parsed)
        server = create_async_engine(parsed, pool_pre_ping=True, connect_args=connect,
                                     pool_size=PG_POOL_SIZE, max_overflow=PG_POOL_OVERFLOW,
                                     **JSON_CODEC)
        event.listen(server.sync_engine, "before_cursor_execute", _nul_free_reads,
                     retval=True)
        return server
    if not parsed.drivername.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True, **JSON_CODEC, **pool)
    if not parsed.database or parsed.database == ":memory:":
        pool = {}  # one connection holds an in-memory database: no pool to size
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        into_wal(parsed.database)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **JSON_CODEC, **pool)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Durability: synchronous=NORMAL. In WAL mode a commit then appends to the WAL
    # without an fsync (the WAL is synced at checkpoints), so one commit costs no disk
    # flush. A crash of the process loses nothing (the OS has the pages). A power loss
    # or OS crash can lose the last committed transactions, but never corrupts the
    # file: it comes back as of an earlier commit. Nothing is lost for good: the
    # projector's offsets are in the same transactions as its rows, so they roll back
    # together and the projector fetches those events from Kafka again and re-applies
    # them (at most once per (job id, seq), as always). FULL would fsync the WAL on
    # every commit, buying nothing that replay does not already give.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# How long a new file's switch into WAL is tried again while another switches it.
WAL_SWITCH_SECS = 30.0


def into_wal(path: str) -> None:
    """Put the SQLite file at ``path`` (made if need be) in WAL mode, which lets the API
    read while the projector (another process) writes. The mode is kept in the file, so
    this is done once per engine, before any of its connections opens.

    Switching takes an exclusive lock for a moment, and SQLite answers a switch tried at
    that moment with "database is locked" at once, busy timeout or not: four services
    starting on a new file, each switching on every new connection, failed so. Here the
    switch is tried again for a while, outside any event loop's connections."""
    deadline = time.monotonic() + WAL_SWITCH_SECS
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=WAL_SWITCH_SECS)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def thread_engine(engine: AsyncEngine) -> Engine | None:
    """A plain (blocking) engine on the same SQLite file as ``engine``, for a writer that
    runs a whole transaction in a worker thread; None for any other store.

    Through aiosqlite every statement is a hop to its thread and back to the event loop:
    the projector's batch of ~25 statements spent more CPU on those hops than in SQLite
    (tests.bench.projector_apply, batches of 20: 1,039 us of CPU per event through
    aiosqlite, 376 us with the batch in one thread). PostgreSQL's driver is async all
    the way down and keeps the async engine."""
    url = engine.url
    if engine.dialect.name != "sqlite" or not url.database or url.database == ":memory:":
        return None
    # The file is in WAL mode already: make_engine put it there when it made ``engine``.
    # One thread at a time uses a connection, but not always the same thread.
    blocking = create_engine(url.set(drivername="sqlite+pysqlite"),
                             connect_args={"timeout": 30, "check_same_thread": False},
                             pool_size=1, max_overflow=0, **JSON_CODEC)
    event.listen(blocking, "connect", _sqlite_pragmas)
    return blocking


# Services that start together (the API and the projector) make the schema at the same
# moment: the later one's CREATE TABLE then fails on the table the other made meanwhile
# (SQLite: "already exists"; PostgreSQL: a duplicate key of its catalog). Looking again
# finds it made.
SCHEMA_ATTEMPTS = 5


async def create_schema(engine: AsyncEngine) -> None:
    """The schema straight from the table definitions, for tests and benchmarks. The
    services use projections.migrate instead; tests/unit/test_migrations.py checks the
    two give the same schema."""
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                await conn.run_sync(create_views)
            return
        except DBAPIError:
            if attempt == SCHEMA_ATTEMPTS:
                raise


async def drop_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(drop_views)
        await conn.run_sync(metadata.drop_all)
