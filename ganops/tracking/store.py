"""The MLflow store a project tracks into: which ones ganops can use, checked before any work, and an MLflow
failure in one line.

``tracking.uri`` empty means the project's SQLite store (``<root>/mlflow.db``). Otherwise a database
(sqlite, postgresql, mysql, mssql) or a tracking server (http, https). MLflow 3's file store (``file:``,
a bare path) is deprecated and in maintenance mode, so it is refused up front. A server is asked for its
``/health`` once, with a short timeout, before a stage takes its lock: an address where nothing answers fails
in seconds, not after MLflow's minutes of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ganops.core.errors import UserError
from ganops.core.params import Params

DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
SERVERS = ("http", "https")
PROBE_SECONDS = 5.0
# MLflow's own retries of a server call (7 retries with backoff: minutes) once the server was reachable;
# a server that goes away mid-stage should fail the stage in well under a minute, not hold its lock.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
# MLflow logs a database error's whole traceback before raising it; ganops words the error it raises instead
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


class TrackingError(UserError, RuntimeError):
    """The MLflow store cannot be used: the message names ``tracking.uri`` (or the file) and what to do."""


def tracking_uri(p: Params, root: Path) -> str:
    return p.tracking.uri or f"sqlite:///{(Path(root).resolve() / 'mlflow.db')}"


def has_store(p: Params, root: Path) -> bool:
    """Whether there is a store to read: tracking on, and the project's mlflow.db made (a reader must not
    create one)."""
    return p.tracking.enabled and (bool(p.tracking.uri) or (Path(root).resolve() / "mlflow.db").is_file())


_FIX = ("leave tracking.uri empty for the project's mlflow.db, or set tracking.enabled=false to run "
        "without tracking")


def check_store(p: Params, root: Path) -> None:
    """Refuse a store MLflow cannot use, before any work; a no-op when tracking is off."""
    if not p.tracking.enabled:
        return
    uri = p.tracking.uri
    if not uri:
        db = Path(root).resolve() / "mlflow.db"
        if db.is_dir():
            raise TrackingError(f"{db} is a folder; the project's MLflow store is a SQLite file there: move the "
                                "folder away, or set tracking.uri")
        if not db.exists():
            _create(db, root)
        return
    scheme = urlparse(uri).scheme.split("+")[0].lower()
    if scheme in ("file", ""):
        raise TrackingError(f"tracking.uri={uri}: MLflow 3's file store (file: or a bare path) is deprecated and in "
                            "maintenance mode, and ganops tracks into a database; use one such as "
                            "sqlite:///mlruns.db or a tracking server (http://host:5000), or " + _FIX)
    if scheme in DATABASES:
        _check_database(uri)
        return
    if scheme not in SERVERS:
        raise TrackingError(f"tracking.uri={uri}: scheme {scheme!r} is not one MLflow tracks into; expected a "
                            f"database ({', '.join(s + '://' for s in DATABASES)}) or a tracking server "
                            f"(http://, https://), or " + _FIX)
    _probe(uri)


def _check_database(uri: str) -> None:
    """A database MLflow can open: an in-memory SQLite keeps nothing past the process, and a database whose
    Python driver is missing fails only inside the first stage (SQLAlchemy loads the driver when the engine is
    made, without connecting)."""
    import sqlalchemy

    if urlparse(uri).scheme.startswith("sqlite") and uri.split("://", 1)[1] in ("", "/", "/:memory:"):
        raise TrackingError(f"tracking.uri={uri}: an in-memory SQLite database forgets every run when the stage "
                            "ends; give a file (sqlite:///path/mlflow.db), or " + _FIX)
    try:
        sqlalchemy.create_engine(uri).dispose()
    except ModuleNotFoundError as exc:
        raise TrackingError(f"tracking.uri={uri}: the database driver is not installed ({exc.name} is missing); "
                            f"`pip install` the driver of {urlparse(uri).scheme} (psycopg[binary] for postgresql, "
                            "mysqlclient for mysql, pyodbc for mssql), or " + _FIX) from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise TrackingError(f"tracking.uri={uri}: not a database URL SQLAlchemy reads ({exc}), or " + _FIX) from None


def _create(db: Path, root: Path) -> None:
    """A new store is built beside its place and renamed into it: MLflow's schema migrations are not one
    transaction, so one cut short (a full disk, ulimit -f, Ctrl-C) in place would leave a half-built store that
    every later run trips over."""
    from ganops.core.artifacts import StorageError, describe_os_error

    tmp = db.with_name(f".{db.name}.tmp-{os.getpid()}")
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{tmp}", (Path(root).resolve() / "mlartifacts").as_uri())
        store.engine.dispose()
        if not db.exists():   # another process may have built it meanwhile: keep theirs
            os.replace(tmp, db)
    except OSError as exc:
        raise StorageError(describe_os_error(exc, db)) from None
    except Exception as exc:
        if is_store_failure(exc):
            raise TrackingError(f"cannot create the MLflow store {db} ({_said(exc)}); the disk may be full or a "
                                "file-size limit (ulimit -f) reached: free space or raise the limit and run again") from None
        raise
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _probe(uri: str) -> None:
    """One GET of the server's /health: refused, unreachable or not an MLflow server, in words."""
    url = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_SECONDS) as response:
            if response.status == 200:
                return
            why = f"it answered HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        why = f"it answered HTTP {exc.code} at /health (not an MLflow tracking server?)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        why = f"no MLflow tracking server answers there ({reason})"
    raise TrackingError(f"tracking.uri={uri}: {why}; start the server (mlflow server --host … --port …), or "
                        + _FIX)


def is_store_failure(exc: BaseException) -> bool:
    """An exception of MLflow or of the database or network underneath it (not the stage's own)."""
    module = type(exc).__module__.split(".")[0]
    return module in ("mlflow", "sqlalchemy", "requests", "urllib3", "alembic") or isinstance(exc, sqlite3.Error)


def store_failure(p: Params, root: Path, exc: BaseException) -> TrackingError:
    """An MLflow failure during a stage, in one line that names the store and the likely cause."""
    uri = tracking_uri(p, root)
    text = " ".join(str(exc).split())
    if "disk i/o error" in text.lower() or "database or disk is full" in text.lower():
        _settle_journal(p, root)
        cause = ("the disk is full or a file-size limit (ulimit -f) was reached: free space or raise the limit "
                 "and run again (the artifacts written so far are intact; MLflow's store was rolled back)")
    elif "database is locked" in text.lower():
        cause = "another process holds the database: wait for it, or use a tracking server for concurrent runs"
    elif urlparse(uri).scheme in SERVERS:
        cause = "the tracking server failed or went away: check it and run again"
    else:
        cause = "check the store, or set tracking.enabled=false to run without tracking"
    return TrackingError(f"MLflow store {uri} failed ({_said(exc)}); {cause}")


def _said(exc: BaseException) -> str:
    """What the store said, without the SQL statement SQLAlchemy appends."""
    text = " ".join(str(exc).split()).split("[SQL:")[0].split("(Background on this error")[0]
    return f"{type(exc).__name__}: {text.strip()[:240]}"


def _settle_journal(p: Params, root: Path) -> None:
    """A write that failed half way leaves SQLite's rollback journal beside the database; opening it rolls the
    half transaction back and removes the journal (deleting the journal by hand would corrupt the store)."""
    if p.tracking.uri:
        return
    db = Path(root).resolve() / "mlflow.db"
    if (db.parent / "mlflow.db-journal").exists():
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db, timeout=5)) as con:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
