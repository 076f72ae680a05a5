"""`finsent serve`: the HTTP API and the dashboard (pipeline/api) over the configured database, on uvicorn.

Without FINSENT_API_TOKENS it serves only on a loopback address (127.0.0.1, ::1, localhost), where
nothing but this host can reach it; anywhere else it refuses to start. The socket is bound here,
before uvicorn runs, so a port in use is one error line and `--port 0` can pick a free port that the
start line names. SIGTERM and Ctrl-C stop it as every command stops (exit 143 / 130), after uvicorn
has finished the requests in flight.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from typing import Any

from pipeline.cli.database import opened_database
from pipeline.config import Settings
from pipeline.errors import UserError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost",)
GRACEFUL_SHUTDOWN_S = 5


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser("serve", description="serve the HTTP API and the dashboard over the database (runs until SIGTERM/Ctrl-C)")
    serve.add_argument("--host", help="address to listen on (default FINSENT_API_HOST, 127.0.0.1); "
                                      "other than loopback it needs FINSENT_API_TOKENS")
    serve.add_argument("--port", help="port to listen on (default FINSENT_API_PORT, 8080); 0 picks a free one")
    serve.set_defaults(handler=serve_api)


def serve_api(settings: Settings, arguments: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.api.app import authentication_off, create_app

    host = settings.api_host if arguments.host is None else _host(arguments.host)
    port = settings.api_port if arguments.port is None else _port(arguments.port)
    if not settings.api_tokens and not is_loopback(host):
        raise UserError(f"--host {host} is reachable from other hosts and FINSENT_API_TOKENS is empty: set FINSENT_API_TOKENS "
                        "(e.g. read:TOKEN,write:TOKEN) or serve on 127.0.0.1")
    listener = _bind(host, port)
    try:
        with opened_database(settings) as engine:
            app = create_app(settings, engine)
            url = _url(host, listener.getsockname()[1])
            if authentication_off(app):
                reason = "FINSENT_API_TOKENS is empty: anyone on this host may read and write; set it to require tokens"
                log.warning("api_unauthenticated", extra={"kv": {"host": host, "reason": reason}})
            log.info("api_serving", extra={"kv": {"url": url, "docs": f"{url}/docs"}})
            config = uvicorn.Config(app, log_config=None, lifespan="off", server_header=False,
                                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
            _quiet_uvicorn(settings.log_level)
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
    return 0


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: addresses only this host can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(text: str) -> str:
    value = text.strip().strip("[]")
    if not value or any(ch.isspace() or ch in "/@#?" for ch in value):
        raise UserError(f"--host {text!r} is not an address to listen on: e.g. 127.0.0.1 (this host only) or 0.0.0.0 (every interface)")
    return value


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise UserError(f"--port {text!r} is not a TCP port: give 1 to 65535 (e.g. 8080), or 0 for a free one")
    return int(text)


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn; a host that does not resolve or a port in use is a UserError."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UserError(f"--host {host}: cannot resolve it ({error.strerror}); give an address such as 127.0.0.1") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(socket.SOMAXCONN)  # connections wait in the backlog until uvicorn accepts them
    except OSError as error:
        listener.close()
        raise UserError(f"cannot listen on {host} port {port} ({error.strerror}): choose another --port "
                        "or stop what holds it") from None
    listener.set_inheritable(True)
    return listener


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _quiet_uvicorn(level: str) -> None:
    """uvicorn's own start and stop lines repeat ours; its errors and, at INFO, the access log still go out."""
    if level != "DEBUG":
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
