"""Run one Apache Kafka node (broker + controller, KRaft) from Maven Central jars.

Standard library only: the test suite, the benchmark and ``jobledger run`` import it
before anything else is known to work.

    python -m deploy.kafka.node jars                      # fetch the pinned jars
    python -m deploy.kafka.node run --data-dir DIR        # run a node until Ctrl-C
"""

import argparse
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from base64 import urlsafe_b64encode
from pathlib import Path
from types import FrameType, TracebackType

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
# The pom is the one place the version is written down.
_M = "{http://maven.apache.org/POM/4.0.0}"
KAFKA_VERSION: str = ET.parse(POM).findtext(f"{_M}properties/{_M}kafka.version") or "unknown"
# KafkaRaftServer logs this once the broker and controller both serve.
STARTED_LINE = b"Kafka Server started"


def cache_dir() -> Path:
    """Where the jars live: outside the repo, shared by every checkout and data dir."""
    base = os.environ.get("JOBLEDGER_KAFKA_CACHE") or Path.home() / ".cache" / "jobledger"
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def ensure_jars() -> Path:
    """Resolve the jars with Maven once (per pom content); later calls return at once."""
    cache = cache_dir()
    libs, marker = cache / "libs", cache / ".complete"
    # The marker holds the pom's hash, so editing the pom (a new binding, say) refetches.
    stamp = hashlib.sha256(POM.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text().strip() == stamp:
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the marker
        if marker.exists() and marker.read_text().strip() == stamp:
            return libs
        # Resolve into a side directory, so an interrupted download never looks complete.
        partial = cache / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = ["mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
                   f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed to fetch the Kafka jars")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # Maven 3.8
            raise RuntimeError(f"Maven could not fetch Kafka {KAFKA_VERSION} "
                               f"({' '.join(command)}):\n{output}")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(stamp)
    return libs


def free_port() -> int:
    """A port nobody listens on now (the OS picks it; racy only in theory)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR as the JVM's server sockets: a port in TIME_WAIT is free to Kafka.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def api_versions_ok(port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka broker on ``port`` answers ApiVersions (v0) without error.

    Request: int32 size, int16 api_key=18, int16 api_version=0, int32 correlation_id,
    string client_id. Response: int32 size, int32 correlation_id, int16 error_code, ...
    """
    client_id = b"jobledger"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = sock.makefile("rb").read(10)  # size, correlation id, error code
    except OSError:
        return False
    if len(head) < 10:
        return False
    _, correlation_id, error_code = struct.unpack(">iih", head)
    return correlation_id == 1 and error_code == 0


def _new_cluster_id() -> str:
    # Kafka's own Uuid.randomUuid(): 16 random bytes, base64url without padding; it
    # skips ids starting with "-", which the format command would take for an option.
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaNode:
    """One KRaft node whose data, cluster id and ports survive restarts in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 controller_port: int | None = None, log_file: Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.log_file = Path(log_file) if log_file else self.data_dir / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _choose_ports(self) -> None:
        # Clients (and a running jobledger) remember the address: keep the last ports
        # when they are still free; ports given explicitly always win.
        saved = self.data_dir / "ports"
        if saved.exists():
            port, cport = (int(p) for p in saved.read_text().split())
            if self.port is None and _is_free(port):
                self.port = port
            if self.controller_port is None and cport != self.port and _is_free(cport):
                self.controller_port = cport
        self.port = self.port or free_port()
        while self.controller_port is None or self.controller_port == self.port:
            self.controller_port = free_port()
        saved.write_text(f"{self.port} {self.controller_port}\n")

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Kafka 4 (KIP-853): a dynamic quorum, formatted with --standalone below.
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
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            # Fewer __consumer_offsets partitions (default 50): the first group is faster.
            "offsets.topic.num.partitions": "8",
            # Consumers join at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created on purpose by the services, with their own settings.
            "auto.create.topics.enable": "false",
            # Events are the source of truth: keep them forever unless a topic says not.
            "log.retention.ms": "-1",
        }
        config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return config

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", "-Xmx512m", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{libs}/*", *args]

    def _format_once(self, libs: Path, config: Path) -> None:
        # meta.properties marks formatted storage; formatting again would refuse (or,
        # forced, lose the events), so data survives restarts.
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        id_file = self.data_dir / "cluster-id"
        if not id_file.exists():
            id_file.write_text(_new_cluster_id() + "\n")
        command = self._java(libs, "kafka.tools.StorageTool", "format", "-t",
                             id_file.read_text().strip(), "-c", str(config), "--standalone")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed ({' '.join(command)}):\n"
                               f"{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the node; return once it serves clients, or raise with the log's tail."""
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._choose_ports()
        config = self._write_config()
        self._format_once(libs, config)
        with self.log_file.open("ab") as log:
            log_start = log.tell()  # the log is appended to: earlier runs don't count
            # Its own session: Ctrl-C in a terminal reaches us, and we stop Kafka in order.
            self.process = subprocess.Popen(self._java(libs, "kafka.Kafka", str(config)),
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while not (api_versions_ok(self.port or 0) and self._logged_started(log_start)):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    why = "exited" if self.process.poll() is not None else "timed out"
                    raise RuntimeError(f"Kafka {KAFKA_VERSION} on {self.bootstrap} {why}; "
                                       f"last lines of {self.log_file}:\n" + self._tail())
                time.sleep(0.2)
        except BaseException:
            self.stop()  # never leave a half-started broker behind
            raise

    def _logged_started(self, offset: int) -> bool:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return STARTED_LINE in log.read()

    def _tail(self, lines: int = 50) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()

    def __enter__(self) -> "KafkaNode":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM behaves like Ctrl-C, also while starting; further signals are ignored so
    # the shutdown itself is not cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka.node")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("jars", help="fetch the pinned Kafka jars and print where they are")
    run = sub.add_parser("run", help="run a node until SIGINT/SIGTERM")
    run.add_argument("--data-dir", type=Path, default=Path(".jobledger/kafka"))
    run.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "jars":
        print(ensure_jars(), flush=True)
        return 0
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = KafkaNode(args.data_dir, port=args.port)
    try:
        node.start()
        print(f"KAFKA_BOOTSTRAP_SERVERS={node.bootstrap}", flush=True)
        while node.process is not None and node.process.poll() is None:
            time.sleep(0.5)
        print(f"Kafka exited on its own; see {node.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
