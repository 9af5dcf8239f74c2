"""Start and stop jobledger's processes as child processes.

Used by ``jobledger run`` (``make run``) and by the end-to-end tests, so the tests start
the services exactly as a user does.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

SERVICES = ("projector", "processor", "executor", "api")


class ServiceProcess:
    """One service (``python -m services.<name>``) with its log file."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to everything else."""
        if self.proc is not None and self.running:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or not self.running:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Stack:
    """All four services sharing one environment (broker, topic prefix, database)."""

    def __init__(self, env: Mapping[str, str], log_dir: Path,
                 names: tuple[str, ...] = SERVICES) -> None:
        self.services = {name: ServiceProcess(name, env, log_dir) for name in names}

    def start(self) -> None:
        for service in self.services.values():
            service.start()

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def watch(self, stop_requested: "list[bool]", restart_delay: float = 2.0) -> None:
        """Restart any service that dies, until asked to stop."""
        while not stop_requested:
            for service in self.services.values():
                if not service.running:
                    print(f"jobledger: {service.name} exited; restarting "
                          f"(log: {service.log_path})", file=sys.stderr, flush=True)
                    time.sleep(restart_delay)
                    service.start()
            time.sleep(0.5)
