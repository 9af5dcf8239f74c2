"""A PostgreSQL server for the tests, from Debian's binaries: initdb into a temporary
directory, ``postgres`` on a free loopback port with its unix socket in that directory,
stopped and removed at the end. ``JOBLEDGER_TEST_PG_URL`` names a running server instead.

Standard library only, like deploy.kafka.node: ``python -m tests.pgserver ensure`` is what
``make test`` runs first, to install Debian's package where it is missing and we are root,
and otherwise to say clearly what is missing.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
``postgres`` user Debian's package makes (or ``nobody``), owning the temporary directory.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.kafka.node import free_port

ENV_URL = "JOBLEDGER_TEST_PG_URL"
# The role initdb makes, with trust authentication: the cluster lives only as long as the
# test session, on loopback and a socket only its owner can reach.
SUPERUSER = "jobledger"
START_TIMEOUT_SECS = 60.0
MISSING = ("PostgreSQL's server binaries (initdb, postgres) were not found on PATH nor in "
           "/usr/lib/postgresql/*/bin: install Debian's package (apt-get install -y "
           "postgresql) or set JOBLEDGER_TEST_PG_URL to a server the tests may create "
           "databases on")


class PostgresMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory of ``initdb`` and ``postgres``: PATH first, then the newest of
    Debian's versioned directories (which Debian does not put on PATH)."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        found = Path(on_path).resolve().parent
        if (found / "postgres").exists():
            return found
    def version(path: str) -> tuple[int, ...]:
        number = Path(path).parent.name
        return tuple(int(p) for p in number.split(".") if p.isdigit())
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version,
                            reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise PostgresMissing(MISSING)


def _server_user() -> str | None:
    """Who runs the server: ourselves, unless we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresMissing("running as root and no unprivileged user (postgres, nobody) "
                          "to run PostgreSQL as")


class PgServer:
    """One throw-away cluster. ``start`` returns the URL of its ``postgres`` database."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.user = _server_user()
        # Another user must reach it: under /tmp, not a TMPDIR that may be root's own.
        self.home = Path(tempfile.mkdtemp(prefix="jobledger-pg-",
                                          dir="/tmp" if self.user else None))
        self.data = self.home / "data"
        self.socket_dir = self.home / "run"
        self.log = self.home / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _run(self, args: list[str]) -> None:
        # cwd: the server's user may not be able to enter ours (root's checkout).
        done = subprocess.run(args, user=self.user, cwd=self.home, capture_output=True,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace')[-2000:]}")

    def start(self) -> str:
        self.socket_dir.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.home, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # C locale: byte order for text, the same order SQLite uses; --no-sync: a
        # throw-away cluster needs no fsync.
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                   "--no-instructions"])
        for attempt in range(3):  # a port taken between choosing and binding: choose again
            self.port = free_port()
            try:
                self._start_server()
                break
            except RuntimeError:
                if attempt == 2 or "could not bind" not in self._log_tail():
                    raise
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _start_server(self) -> None:
        args = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.socket_dir), "-c", "listen_addresses=127.0.0.1",
                # Durability buys nothing for a cluster deleted at the end of the session.
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=300",
                "-c", "shared_buffers=32MB"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, user=self.user, cwd=self.home, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        pid_file = self.data / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}) at start:\n"
                                   f"{self._log_tail()}")
            # The postmaster writes "ready" as the pid file's status line once it accepts
            # connections.
            try:
                lines = pid_file.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres not ready within {START_TIMEOUT_SECS}s:\n"
                           f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, no wait
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def _apt_install() -> None:
    """Debian's package, as root only (a fresh CI machine); its output goes to stderr."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]):
        print("+", " ".join(args), file=sys.stderr)
        subprocess.run(args, env=env, stdout=sys.stderr, check=False)


def main(argv: list[str]) -> int:
    """``check``: say where the tests' PostgreSQL comes from, or exit 1 saying what is
    missing. ``ensure``: the same, after installing Debian's package if it is missing and
    we are root (what ``make test`` runs)."""
    if argv[1:] not in (["check"], ["ensure"]):
        print("usage: python -m tests.pgserver check|ensure", file=sys.stderr)
        return 2
    if os.environ.get(ENV_URL):
        print(f"PostgreSQL for the tests: the server {ENV_URL} names")
        return 0
    try:
        bindir = find_bindir()
    except PostgresMissing as exc:
        if argv[1] != "ensure" or os.geteuid() != 0 or shutil.which("apt-get") is None:
            print(exc, file=sys.stderr)
            return 1
        _apt_install()
        try:
            bindir = find_bindir()
        except PostgresMissing as again:
            print(f"apt-get install postgresql did not help: {again}", file=sys.stderr)
            return 1
    print(f"PostgreSQL for the tests: started by the test session from {bindir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
