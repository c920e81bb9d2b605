"""A PgBouncer of the tests' own, in transaction pooling mode (Debian's 1.18), in front of
the embedded test Postgres: the scale-out path of PRODUCT §7, exercised for real.

Missing pgbouncer is a failure, not a skip: `scripts/bootstrap.sh --browser` installs it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support.processes import free_port


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("pgbouncer is not installed: run ./scripts/bootstrap.sh --browser")
    return found


class PgBouncer:
    """`url_for(direct_url)` gives the same database through the pooler."""

    def __init__(self, direct_url: str) -> None:
        parts = urlsplit(direct_url)
        query = parse_qs(parts.query)
        socket_dir = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        self.user = parts.username or "postgres"
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        os.chmod(self.folder, 0o755)  # noqa: S103 - pgbouncer drops root, then reads it
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={socket_dir} port={parts.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\n"
            "default_pool_size = 20\n"
            "server_reset_query =\n"
            "logfile =\n"
            "pidfile =\n"
        )
        for name in ("users.txt", "pgbouncer.ini"):
            os.chmod(self.folder / name, 0o644)
        command = [pgbouncer_binary(), "-q", str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses root: run as the server's socket owner
            command[1:1] = ["-u", pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not start listening")

    def url_for(self, direct_url: str) -> str:
        database = urlsplit(direct_url).path.lstrip("/")
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
