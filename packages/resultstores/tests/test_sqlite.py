"""The conformance suite over SQLite (the embedded default), and SQL specifics."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from resultstores import ResultStoreError, connect, states
from resultstores._sqlalchemy import SQLAlchemyResultStore, sqlalchemy_url
from resultstores.testing import ResultStoreConformance, new_id


@pytest.fixture(scope="class")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite") / "results.db"


class TestSQLiteStore(ResultStoreConformance):
    @pytest.fixture(autouse=True)
    def _database(self, database: Path) -> None:
        self.path = database

    def store_url(self) -> str:
        return f"sqlite:///{self.path}"


class TestSQLiteCeleryTables(ResultStoreConformance):
    """Celery's celery_taskmeta layout, pickles allowed explicitly."""

    hammer_increments = 250  # the counters are the same code as above
    keeps_relations = False  # Celery's table has no group_id/parent_id/children

    @pytest.fixture(autouse=True)
    def _database(self, database: Path) -> None:
        self.path = database.with_name("celery.db")

    def store_url(self) -> str:
        return f"sqlite:///{self.path}"

    def store_options(self) -> dict[str, object]:
        return {"schema": "celery", "accept": ["json", "pickle"]}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    return f"sqlite:///{tmp_path / 'r.db'}"


def test_url_forms_choose_the_documented_drivers() -> None:
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert (
        sqlalchemy_url("mysql://root@h:3306/test") == "mysql+pymysql://root@h:3306/test"
    )
    assert (
        sqlalchemy_url("sqlalchemy+postgresql://u@h/db")
        == "postgresql+psycopg://u@h/db"
    )
    assert (
        sqlalchemy_url("db+postgresql+psycopg2://u@h/db")
        == "postgresql+psycopg2://u@h/db"
    )
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_celery_tables_need_pickle_allowed_explicitly(sqlite_url: str) -> None:
    with pytest.raises(ResultStoreError, match=r"accept=\['json', 'pickle'\]"):
        connect(sqlite_url, schema="celery")


def test_an_unknown_schema_is_named(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="schema='celry'"):
        connect(sqlite_url, schema="celry")


def test_native_rows_hold_the_celery_document_as_json(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = connect(sqlite_url)
    task_id = new_id()
    store.mark_success(task_id, 5)
    with sqlite3.connect(tmp_path / "r.db") as db:
        key, status, value = db.execute(
            "SELECT key, status, value FROM resultstores_results"
        ).fetchone()
    assert (key, status) == (f"celery-task-meta-{task_id}", "SUCCESS")
    assert value.startswith(
        b'{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], '
        b'"date_done": "'
    )
    assert value.endswith(f'"task_id": "{task_id}"}}'.encode())


def test_celery_rows_hold_pickles_celery_reads(sqlite_url: str, tmp_path: Path) -> None:
    import pickle

    store = connect(sqlite_url, schema="celery", accept=["json", "pickle"])
    ok, bad = new_id(), new_id()
    store.mark_success(ok, {"x": 1})
    store.mark_failure(bad, ValueError("boom"))
    with sqlite3.connect(tmp_path / "r.db") as db:
        rows = dict(
            db.execute("SELECT task_id, result FROM celery_taskmeta").fetchall()
        )
        status = dict(
            db.execute("SELECT task_id, status FROM celery_taskmeta").fetchall()
        )
    assert pickle.loads(rows[ok]) == {"x": 1}
    assert pickle.loads(rows[bad]) == {
        "exc_type": "ValueError",
        "exc_message": ["boom"],
        "exc_module": "builtins",
    }
    assert status == {ok: "SUCCESS", bad: "FAILURE"}


def test_a_row_written_the_way_celery_writes_it_is_read(
    sqlite_url: str, tmp_path: Path
) -> None:
    import pickle
    from datetime import datetime

    store = connect(sqlite_url, schema="celery", accept=["json", "pickle"])
    task_id = new_id()
    with sqlite3.connect(tmp_path / "r.db") as db:
        db.execute(
            "INSERT INTO celery_taskmeta (task_id, status, result, date_done,"
            " traceback, name, args, kwargs)"
            " VALUES (?, 'FAILURE', ?, ?, 'TB', 'proj.fail', ?, ?)",
            (
                task_id,
                pickle.dumps(
                    {
                        "exc_type": "KeyError",
                        "exc_message": ("k",),
                        "exc_module": "builtins",
                    },
                    protocol=5,
                ),
                datetime(2026, 11, 21, 5, 22, 16),
                b'["k"]',
                b"{}",
            ),
        )
    meta = store.get(task_id)
    assert meta.state == states.FAILURE
    assert type(meta.result) is KeyError
    assert (meta.traceback, meta.name, meta.args, meta.kwargs) == (
        "TB",
        "proj.fail",
        ["k"],
        {},
    )
    assert meta.date_done is not None
    assert meta.date_done.isoformat() == "2026-11-21T05:22:16+00:00"


def test_pickled_results_are_refused_unless_accepted(sqlite_url: str) -> None:
    import msgwire

    writer = connect(sqlite_url, serializer="pickle")
    task_id = new_id()
    writer.mark_success(task_id, {"x": 1})
    assert writer.get(task_id).result == {"x": 1}
    # A JSON reader decodes stored bytes as JSON only: a pickle is an error,
    # never unpickled.
    reader = connect(sqlite_url, serializer="json")
    with pytest.raises(msgwire.DecodeError):
        reader.get(task_id)
    # Adding pickle to the accept list does not make JSON readers unpickle.
    assert "application/x-python-serialize" not in connect(sqlite_url).accept


def test_tables_take_the_prefix(sqlite_url: str, tmp_path: Path) -> None:
    connect(sqlite_url, table_prefix="app1_").mark_success(new_id(), 1)
    with sqlite3.connect(tmp_path / "r.db") as db:
        names = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert {"app1_results", "app1_counters"} <= names


def test_an_in_memory_database_works_in_one_process() -> None:
    store = connect("sqlite://")
    assert isinstance(store, SQLAlchemyResultStore)
    task_id = new_id()
    store.mark_success(task_id, [1])
    assert store.wait(task_id, timeout=1.0).result == [1]
