"""Install the Debian packages some integration tests drive, where this machine allows it.

The browser test needs `chromium`, the Alertmanager test `prometheus-alertmanager`, the rules test
`promtool` (package `prometheus`). `make test` runs this before pytest: as root on a machine with
apt-get it installs whatever is missing; anywhere else it says why not, and those tests skip with
that reason. It never fails the run: a missing tool skips its tests, it does not break the suite.

    python -m tests.support.system_packages
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class SystemTool:
    package: str
    """The Debian package that ships it."""
    binary: str
    """The program the tests run."""
    used_by: str


TOOLS = (
    SystemTool("chromium", "chromium", "the dashboard's browser test"),
    SystemTool("prometheus-alertmanager", "prometheus-alertmanager", "the Alertmanager channel test"),
    SystemTool("prometheus", "promtool", "the Prometheus rules check"),
)


def missing(tools: tuple[SystemTool, ...] = TOOLS) -> list[SystemTool]:
    return [tool for tool in tools if shutil.which(tool.binary) is None]


def why_not_installable() -> str | None:
    """None where apt-get can install packages here, else the reason it cannot."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not running as root"
    return None


def apt_install(packages: list[str]) -> bool:
    """apt-get install, refreshing the package lists once if the first try fails."""
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-q"], env=environment, check=False, timeout=INSTALL_TIMEOUT_S,
                           stdout=subprocess.DEVNULL)
        result = subprocess.run(command, env=environment, check=False, timeout=INSTALL_TIMEOUT_S,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode == 0:
            return True
    last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"system packages: apt-get install {' '.join(packages)} failed: {last_line}", file=sys.stderr)
    return False


def main() -> int:
    needed = missing()
    if not needed:
        print("system packages: " + ", ".join(tool.binary for tool in TOOLS) + " present")
        return 0
    reason = why_not_installable()
    if reason is None:
        print("system packages: installing " + ", ".join(tool.package for tool in needed), flush=True)
        apt_install([tool.package for tool in needed])
    for tool in missing(needed):
        print(f"system packages: {tool.binary} unavailable ({reason or 'install failed'}); {tool.used_by} will skip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
