"""The embedded PostgreSQL is reachable only by us: password auth, no TCP, a private socket, parents untouched.

Each test starts its own server (about a second) on a fresh data dir, as a first run would.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.config import Settings
from pipeline.database import open_database
from storage import embedded
from storage.embedded import PASSWORD_FILE, EmbeddedPostgres, EmbeddedPostgresError
from storage.engine import redacted

pytestmark = pytest.mark.integration

LONG_NAME_LENGTH = 150


def socket_dir_of(server: EmbeddedPostgres) -> Path:
    lines = (server.pgdata / "postmaster.pid").read_text().splitlines()
    return Path(lines[4])


def modes_above(path: Path) -> dict[Path, tuple[int, int, int]]:
    """Mode, owner and group of every directory above `path`, as the start must leave them."""
    return {parent: (os.stat(parent).st_mode, os.stat(parent).st_uid, os.stat(parent).st_gid) for parent in path.parents}


def hba_rules(pgdata: Path) -> list[list[str]]:
    lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture
def long_data_dir(tmp_path: Path) -> Path:
    """A data dir whose path is 150 characters long: too long for a unix socket inside it."""
    name = "d" * (LONG_NAME_LENGTH - len(str(tmp_path)) - 1)
    path = tmp_path / name
    assert len(str(path)) == LONG_NAME_LENGTH
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    handle = EmbeddedPostgres(tmp_path / "data", delete_on_exit=True)
    yield handle
    handle.stop()


def test_only_password_authentication_and_no_tcp(server: EmbeddedPostgres) -> None:
    url = server.start()

    rules = hba_rules(server.pgdata)
    assert rules == [["local", "all", "all", "scram-sha-256"]]
    assert "trust" not in (server.pgdata / "pg_hba.conf").read_text()
    password_file = server.pgdata / PASSWORD_FILE
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    with psycopg.connect(url) as connection:
        assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
        assert connection.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        stored = connection.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").fetchone()
        assert stored is not None and str(stored[0]).startswith("SCRAM-SHA-256$")

    socket_dir = str(socket_dir_of(server))
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=socket_dir, port=5432, user="postgres", dbname="finsent", connect_timeout=10)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=socket_dir, port=5432, user="postgres", dbname="finsent", password="wrong",
                        connect_timeout=10)


def test_a_long_data_dir_puts_the_socket_in_a_private_directory(long_data_dir: Path) -> None:
    above = modes_above(long_data_dir)
    server = EmbeddedPostgres(long_data_dir, delete_on_exit=True)
    try:
        url = server.start()
        socket_dir = socket_dir_of(server)
        status = os.lstat(socket_dir)
        assert stat.S_ISDIR(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o700
        assert status.st_uid == os.stat(server.pgdata).st_uid, "owned by the server's user"
        world_writable = [str(parent) for parent in socket_dir.parents if os.stat(parent).st_mode & stat.S_IWOTH]
        assert world_writable == [], f"socket dir {socket_dir} is under a world-writable directory"
        assert len(os.fsencode(socket_dir / ".s.PGSQL.5432")) <= 107
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        assert modes_above(long_data_dir) == above, "no parent's permissions changed"
    finally:
        server.stop()
    assert modes_above(long_data_dir) == above
    assert not server.pgdata.exists()


def test_start_leaves_the_permissions_of_parent_directories_alone(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)  # as a home directory or pytest's own tmp dir would be
    data_dir = private / "nested" / "data"
    data_dir.mkdir(parents=True)
    above = modes_above(data_dir / "postgres")
    server = EmbeddedPostgres(data_dir, delete_on_exit=True)
    try:
        server.start()
        assert modes_above(data_dir / "postgres") == above
    finally:
        server.stop()
    assert modes_above(data_dir / "postgres") == above


JOIN_AND_PRINT_URL = """
import sys
from storage.embedded import EmbeddedPostgres
handle = EmbeddedPostgres(sys.argv[1])
print(handle.start())
handle.stop()
"""


def test_a_second_process_joins_with_the_same_credentials_and_the_last_one_stops_it(server: EmbeddedPostgres) -> None:
    url = server.start()
    postmaster = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])

    joined = subprocess.run([sys.executable, "-c", JOIN_AND_PRINT_URL, str(server.pgdata.parent)],
                            capture_output=True, text=True, timeout=180)

    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.strip() == url
    assert int((server.pgdata / "postmaster.pid").read_text().splitlines()[0]) == postmaster, "still running for us"
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    server.stop()
    assert not server.pgdata.exists(), "the last handle stopped and deleted it"


def test_the_url_is_never_logged_with_its_password(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    settings = Settings.load({"FINSENT_DATA_DIR": str(tmp_path / "data")})
    with caplog.at_level(logging.DEBUG):
        database = open_database(settings)
        try:
            password = (settings.data_dir / "postgres" / PASSWORD_FILE).read_text().strip()
            assert len(password) >= 32 and password in database.url
            with database.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        finally:
            database.close()
    assert "embedded_postgres_ready" in caplog.text
    output = capfd.readouterr()
    assert password not in caplog.text + output.out + output.err
    assert password not in redacted(database.url) and password not in str(database.engine.url)


def test_a_data_dir_of_the_old_trust_setup_is_secured_at_start_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = EmbeddedPostgres(data_dir, delete_on_exit=True)
    with psycopg.connect(server.start(), autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (x int)")
        connection.execute("INSERT INTO kept VALUES (42)")
    server.stop_server_process()
    pgdata = server.pgdata
    (pgdata / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (pgdata / PASSWORD_FILE).unlink()
    try:
        old_server = embedded._launch(pgdata, embedded._server_account())  # as the old finsent left it running
        embedded._wait_until_ready(pgdata, old_server.pid, old_server)
        with pytest.raises(EmbeddedPostgresError) as refused:
            EmbeddedPostgres(data_dir).start()
        assert "older finsent" in str(refused.value) and "\n" not in str(refused.value)
        assert old_server.poll() is None, "a server others may use is left alone"
        embedded._shut_down(old_server.pid, old_server)
        (pgdata / "pg_hba.conf").write_text("local all all trust\n")

        url = server.start()
        assert "trust" not in (pgdata / "pg_hba.conf").read_text()
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT x FROM kept").fetchone() == (42,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=str(socket_dir_of(server)), port=5432, user="postgres", dbname="finsent",
                            connect_timeout=10)
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the server run as another user, who may not reach the wheel")
def test_as_root_a_wheel_out_of_the_server_users_reach_runs_from_a_read_only_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtualenv in a 0700 directory (a fresh CI clone, root's home): the server's user cannot
    run its programs, and the parents are not opened up: a root-owned copy is used instead."""
    monkeypatch.setattr(embedded, "_reachable_by_others", lambda _path: False)
    tmp_path.chmod(0o700)
    server = EmbeddedPostgres(tmp_path / "data", delete_on_exit=True)
    url = server.start()
    try:
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    copies = list(embedded.INSTALL_COPIES.glob("pginstall-*/embedded_postgres/pginstall/bin/postgres"))
    assert copies
    for directory in [copies[0], *copies[0].parents][:6]:
        status = directory.stat()
        assert status.st_uid == 0 and not status.st_mode & 0o022, f"{directory} must be root's and not writable by others"
