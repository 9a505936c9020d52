"""A `tracking.uri` MLflow cannot use is refused before any work, in seconds, with one line."""

import socket
import time

import pytest
from conftest import REPO, fast_overrides, one_line_error, run_ganops

from ganops.core import params as P
from ganops.tracking.store import TrackingError, check_store


def _closed_port() -> int:
    with socket.socket() as s:   # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("uri", "says"), [
    ("notascheme://x", "scheme 'notascheme' is not one MLflow tracks into"),
    ("file:./mlruns", "file store"),
    ("./mlruns", "file store"),
    ("http://127.0.0.1:{port}", "no MLflow tracking server answers there"),
    ("sqlite://", "an in-memory SQLite database forgets every run"),
    pytest.param("postgresql://u:p@127.0.0.1:{port}/db", "the database driver is not installed",
                 marks=pytest.mark.skipif(__import__("importlib").util.find_spec("psycopg") is not None,
                                          reason="the postgresql driver is installed here")),
])
def test_an_unusable_store_is_refused_before_any_work(tmp_path, uri, says):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    uri = uri.format(port=_closed_port())
    t0 = time.monotonic()
    line = one_line_error(run_ganops(tmp_path, "stage", "dataset", sets=[*fast_overrides(), f"tracking.uri={uri}"],
                                     check=False))
    assert time.monotonic() - t0 < 30
    assert f"tracking.uri={uri}" in line and says in line and "tracking.enabled=false" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]     # no data, no lock, no store


def test_the_check_accepts_what_mlflow_tracks_into(tmp_path):
    for uri in ("", f"sqlite:///{tmp_path / 'other.db'}"):
        check_store(P.validate({"tracking": {"uri": uri}}), tmp_path)
    assert (tmp_path / "mlflow.db").is_file()        # the project's store, built whole before its first run
    check_store(P.validate({"tracking": {"enabled": False, "uri": "notascheme://x"}}), tmp_path)   # off: not used
    (tmp_path / "mlflow.db").unlink()
    (tmp_path / "mlflow.db").mkdir()
    with pytest.raises(TrackingError, match="mlflow.db is a folder"):
        check_store(P.validate({}), tmp_path)
