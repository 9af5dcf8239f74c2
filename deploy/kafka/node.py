"""Run one Apache Kafka node (broker + controller, KRaft) from Maven Central jars.

Standard library only: the test suite, the benchmark and ``jobledger run`` import it
before anything else is known to work.

    python -m deploy.kafka.node jars                      # fetch the pinned jars
    python -m deploy.kafka.node run --data-dir DIR        # run a node until Ctrl-C
"""

import argparse
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
# The pom is the one place the version is written down.
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())[1]  # type: ignore[index]


def cache_dir() -> Path:
    base = os.environ.get("JOBLEDGER_KAFKA_CACHE") or Path.home() / ".cache" / "jobledger"
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def ensure_jars() -> Path:
    """Resolve the jars with Maven once; later calls return at once."""
    libs = cache_dir() / "libs"
    marker = cache_dir() / ".complete"
    if marker.exists():
        return libs
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes must not download into one dir
        if not marker.exists():
            command = ["mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
                       f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"Maven could not fetch Kafka {KAFKA_VERSION} "
                                   f"({' '.join(command)}):\n{done.stdout}\n{done.stderr}")
            marker.touch()
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_versions_ok(port: int, timeout: float = 1.0) -> bool:
    """True when the broker answers an ApiVersions (v0) request without error."""
    client_id = b"jobledger"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(4)
            if len(header) < 4:
                return False
            size = struct.unpack(">i", header)[0]
            payload = b""
            while len(payload) < size:
                chunk = sock.recv(size - len(payload))
                if not chunk:
                    return False
                payload += chunk
            correlation_id, error_code = struct.unpack(">ih", payload[:6])
            return correlation_id == 1 and error_code == 0
    except OSError:
        return False


class KafkaNode:
    """One KRaft node whose data (and port) survive restarts in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 controller_port: int | None = None, log_file: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.log_file = log_file or self.data_dir / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _choose_ports(self) -> None:
        saved = self.data_dir / "ports"
        if saved.exists() and self.port is None:
            port, cport = (int(p) for p in saved.read_text().split())
            if _is_free(port) and _is_free(cport):
                self.port, self.controller_port = port, cport
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        saved.write_text(f"{self.port} {self.controller_port}")

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            # One node: every internal topic has one replica and needs one in sync.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # The services create their topics with explicit retention; keep the rest.
            "log.retention.ms": "-1",
        }
        config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return config

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{libs}/*", *args]

    def start(self, timeout: float = 90.0) -> None:
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._choose_ports()
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format", "-t",
                                      cluster_id, "-c", str(config), "--standalone"),
                           check=True, capture_output=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(self._java(libs, "kafka.Kafka", str(config)),
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not api_versions_ok(self.port or 0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace").splitlines()[-50:]
                self.stop()
                raise RuntimeError(f"Kafka {KAFKA_VERSION} did not become ready on "
                                   f"{self.bootstrap}:\n" + "\n".join(tail))
            time.sleep(0.2)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "KafkaNode":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka.node")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jars", help="fetch the pinned Kafka jars into the cache")
    run = sub.add_parser("run", help="run a node until SIGINT/SIGTERM")
    run.add_argument("--data-dir", type=Path, default=Path(".jobledger/kafka"))
    run.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "jars":
        print(ensure_jars())
        return 0
    node = KafkaNode(args.data_dir, port=args.port)
    node.start()
    print(f"KAFKA_BOOTSTRAP_SERVERS={node.bootstrap}", flush=True)
    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda s, f: stopping.append(s))
    signal.signal(signal.SIGTERM, lambda s, f: stopping.append(s))
    while not stopping and node.process is not None and node.process.poll() is None:
        time.sleep(0.5)
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
