"""The PostgreSQL fixture itself: a real server per worker, unix socket only, a fresh database per test."""
from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.fixtures.postgres import PostgresServer


def test_server_accepts_connections_as_superuser(postgres_server: PostgresServer, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT current_user, current_database(), "
                           "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").fetchone()
    assert row == ("postgres", conninfo_to_dict(postgres_url)["dbname"], True)
    assert row[1].startswith("test_")
    assert postgres_server.pid is not None and postgres_server.proc is not None
    assert postgres_server.proc.poll() is None


def test_server_is_unix_socket_only_and_not_root(postgres_server: PostgresServer, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        sockdirs = conn.execute("SHOW unix_socket_directories").fetchone()[0]
        backend_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        backend_uid = os.stat(f"/proc/{backend_pid}").st_uid  # while connected: the backend exits after
    assert listen == ""
    assert sockdirs == str(postgres_server.sockdir)
    # The postmaster is the PID we hold (no wrapper in between), and it never runs as root.
    assert (postgres_server.datadir / "postmaster.pid").read_text().splitlines()[0] == str(postgres_server.pid)
    assert backend_uid != 0


def test_each_postgres_url_is_a_distinct_empty_database(postgres_server: PostgresServer, postgres_url: str) -> None:
    other = postgres_server.create_database()
    try:
        assert conninfo_to_dict(other)["dbname"] != conninfo_to_dict(postgres_url)["dbname"]
        with psycopg.connect(postgres_url) as conn:
            conn.execute("CREATE TABLE only_here (id int PRIMARY KEY)")
            conn.execute("INSERT INTO only_here VALUES (1)")
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
    finally:
        postgres_server.drop_database(other)
    with psycopg.connect(postgres_server.url()) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert conninfo_to_dict(other)["dbname"] not in names


def test_listen_notify_crosses_connections(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as listener, \
            psycopg.connect(postgres_url, autocommit=True) as notifier:
        listener.execute("LISTEN stock_changed")
        notifier.execute("SELECT pg_notify('stock_changed', 'sku-42')")
        notifier_pid = notifier.info.backend_pid
        got = list(listener.notifies(timeout=10, stop_after=1))
    assert [(n.channel, n.payload, n.pid) for n in got] == [("stock_changed", "sku-42", notifier_pid)]
