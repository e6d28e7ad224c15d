"""The local broker stack: Apache Kafka (KRaft, single node) and RabbitMQ as
plain processes on loopback, started and stopped by pid.

`up(secure=True)` adds, beside the plaintext listeners, Kafka over SASL_SSL
(a SCRAM user and a PLAIN user) and over mutual TLS, and RabbitMQ over TLS
with its own user; certificates and passwords come from
`cli.local_stack_secure`. A broker already running without them is
restarted with them (its data stays); a plain `up` leaves a secured broker
as it is, since it serves the plaintext listeners too.

Kafka comes from its Maven Central artifacts (resolved by `stack/kafka/pom.xml`),
RabbitMQ from Debian's `rabbitmq-server` package. Everything a run writes (data,
logs, pid files) lives under one folder, `.stack/` at the repository root by
default (`IOT_STACK_DIR`), so `down` can stop exactly what `up` started.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cli.local_stack_secure import (
    KAFKA_PLAIN_USER,
    KAFKA_SCRAM_USER,
    SCRAM_MECHANISMS,
    SecureMaterial,
    rabbitmq_definitions,
    write_private,
)
from runtime.settings import StackSettings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_POM = REPO_ROOT / "stack" / "kafka" / "pom.xml"
KAFKA_JARS = REPO_ROOT / "stack" / "kafka" / "target" / "dependency"
KAFKA_LOG4J = REPO_ROOT / "stack" / "kafka" / "log4j2.properties"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = RABBITMQ_SERVER.with_name("rabbitmqctl")


class StackError(RuntimeError):
    """Something in the local stack did not come up or cannot be started."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and which loopback ports it takes."""

    home: Path
    kafka_port: int = 9092
    kafka_secure_port: int = 9093  # SASL_SSL (secured stack)
    kafka_mtls_port: int = 9094  # SSL with client certificates (secured stack)
    kafka_controller_port: int = 9095
    rabbitmq_port: int = 5672
    rabbitmq_tls_port: int = 5671  # AMQPS (secured stack)
    rabbitmq_dist_port: int = 25672
    epmd_port: int = 4369

    ready_timeout_s: float = 90.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "StackConfig":
        s = StackSettings.from_env(env)
        return cls(
            home=Path(s.home) if s.home else REPO_ROOT / ".stack",
            kafka_port=s.kafka_port,
            kafka_secure_port=s.kafka_secure_port,
            kafka_mtls_port=s.kafka_mtls_port,
            kafka_controller_port=s.kafka_controller_port,
            rabbitmq_port=s.rabbitmq_port,
            rabbitmq_tls_port=s.rabbitmq_tls_port,
            rabbitmq_dist_port=s.rabbitmq_dist_port,
            ready_timeout_s=s.ready_timeout_s,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def rabbitmq_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.rabbitmq_port}/%2F"

    @property
    def kafka_secure_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_secure_port}"

    @property
    def kafka_mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_mtls_port}"

    @property
    def secure(self) -> SecureMaterial:
        """The secured listeners' certificates, passwords and `secure.env`."""
        return SecureMaterial(self.home)

    def secure_rabbitmq_url(self) -> str:
        """The AMQPS URL of the stack's own RabbitMQ user (it holds the password)."""
        return self.secure.rabbitmq_url(self.rabbitmq_tls_port)

    def kafka_client_settings(self, how: str = "scram") -> dict[str, str]:
        """librdkafka settings for one of the secured Kafka listeners:
        `scram` (SASL_SSL, SCRAM-SHA-512), `plain` (SASL_SSL, PLAIN) or
        `mtls` (SSL with the client certificate); bootstrap included."""
        passwords, tls = self.secure.passwords(), self.secure.tls
        common = {"ssl.ca.location": str(tls.ca)}
        if how == "mtls":
            return {**common, "bootstrap.servers": self.kafka_mtls_bootstrap, "security.protocol": "SSL",
                    "ssl.certificate.location": str(tls.client_cert), "ssl.key.location": str(tls.client_key)}
        user, password, mechanism = {
            "scram": (KAFKA_SCRAM_USER, passwords.kafka_scram, "SCRAM-SHA-512"),
            "plain": (KAFKA_PLAIN_USER, passwords.kafka_plain, "PLAIN"),
        }[how]
        return {**common, "bootstrap.servers": self.kafka_secure_bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


# --- small process helpers -------------------------------------------------


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return False


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class ManagedProcess:
    """One process the stack started: its pid file, log and a marker that must
    appear in its command line (so a recycled pid is never signalled)."""

    name: str
    folder: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        return self.folder / "pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "server.out"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.marker in pid_cmdline(pid):
            return pid
        return None

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.folder,
                start_new_session=True,  # own process group: `down` stops its children too
            )
        self.pid_file.write_text(str(proc.pid))
        self._wait_for_exec(proc)
        return proc.pid

    def _wait_for_exec(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """Popen returns once the child has begun its exec, which can be
        before the kernel shows the new command line: for that moment
        /proc/<pid>/cmdline lacks the marker and `pid()` would call a
        starting server gone (seen as "exited while starting", and as a
        `down` that left the server running)."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and self.marker not in pid_cmdline(proc.pid):
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} (pid {proc.pid}) does not show {self.marker!r} in its command line")
            time.sleep(0.001)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL after `timeout`. True if it ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pid):
                _reap(pid)
                time.sleep(0.2)
            if not _group_alive(pid):
                break
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_until(check, timeout: float, what: str, proc: ManagedProcess | None = None) -> None:
    """Poll `check()` until it is true; fail clearly on timeout or process death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.pid() is None:
            if check():  # it lost a race to an equal server someone else started (epmd): that one serves
                return
            raise StackError(f"{what} exited while starting; see its log: {proc.log_file}\n{tail(proc.log_file)}")
        time.sleep(0.5)
    where = f"; see its log: {proc.log_file}\n{tail(proc.log_file)}" if proc else ""
    raise StackError(f"{what} did not answer within {timeout:.0f} s{where}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


# --- Kafka -----------------------------------------------------------------


def kafka_answers(bootstrap: str, timeout: float = 2.0, settings: dict[str, str] | None = None) -> bool:
    """A metadata request succeeds (with `settings`: on a secured listener, authenticated)."""
    from confluent_kafka.admin import AdminClient

    config = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0, **(settings or {})}
    client = AdminClient(config)
    try:
        client.list_topics(timeout=timeout)
        return True
    except Exception:  # KafkaException on timeout / transport failure
        return False


def ensure_kafka_jars() -> Path:
    """Resolve the broker's jars with Maven once; later starts reuse them."""
    if not (KAFKA_JARS.is_dir() and any(KAFKA_JARS.glob("kafka_2.13-*.jar"))):
        if shutil.which("mvn") is None:
            raise StackError("Maven (mvn) is needed to fetch Kafka's jars; install it (apt-get install maven)")
        log.info("resolving Apache Kafka from Maven Central into %s", KAFKA_JARS)
        result = subprocess.run(
            ["mvn", "-B", "-q", "-f", str(KAFKA_POM), "dependency:copy-dependencies", "-DincludeScope=runtime"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"Maven could not resolve Kafka's jars:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return KAFKA_JARS


def kafka_properties(cfg: StackConfig, data_dir: Path, secure: bool = False) -> str:
    listeners = {"PLAINTEXT": cfg.kafka_port}
    if secure:
        listeners |= {"SASL_SSL": cfg.kafka_secure_port, "SSL": cfg.kafka_mtls_port}
    advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{cfg.kafka_controller_port}",
        f"listeners={advertised},CONTROLLER://127.0.0.1:{cfg.kafka_controller_port}",
        f"advertised.listeners={advertised}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=" + ",".join(f"{name}:{name}" for name in listeners) + ",CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        "log.retention.hours=24",
    ]
    if secure:
        lines += _kafka_secure_properties(cfg)
    return "\n".join([*lines, ""])


def _kafka_secure_properties(cfg: StackConfig) -> list[str]:
    """TLS for both secured listeners (a PKCS#12 key store, the CA as a PEM
    trust store), SASL PLAIN and SCRAM on SASL_SSL (the PLAIN user lives in
    the JAAS line, the SCRAM user in the cluster's metadata), client
    certificates required on SSL."""
    material = cfg.secure
    passwords, tls = material.passwords(), material.tls
    jaas = "org.apache.kafka.common.security"
    return [
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={tls.server_keystore}",
        f"ssl.keystore.password={passwords.key}",
        f"ssl.key.password={passwords.key}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca}",
        "listener.name.ssl.ssl.client.auth=required",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN," + ",".join(SCRAM_MECHANISMS),
        f'listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}.plain.PlainLoginModule required '
        f'user_{KAFKA_PLAIN_USER}="{passwords.kafka_plain}";',
        *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={jaas}.scram.ScramLoginModule required;"
          for m in SCRAM_MECHANISMS),
    ]


def _cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding,
    never starting with '-' (the storage tool would read it as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """Kafka in KRaft mode, one node, on loopback."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.folder = cfg.home / "kafka"
        self.proc = ManagedProcess("kafka", self.folder, "kafka.Kafka")

    def running_pid(self) -> int | None:
        return self.proc.pid()

    @property
    def properties_file(self) -> Path:
        return self.folder / "server.properties"

    def secured(self) -> bool:
        """Whether the running broker was started with the secured listeners."""
        try:
            return "SASL_SSL://" in self.properties_file.read_text()
        except OSError:
            return False

    def up(self, secure: bool = False) -> str:
        if self.proc.pid() is not None:
            if not secure or self.secured():
                wait_until(lambda: kafka_answers(self.cfg.kafka_bootstrap), self.cfg.ready_timeout_s, "Kafka", self.proc)
                if secure:
                    self._secure_users()
                return f"Kafka already running (pid {self.proc.pid()}) on {self._where(secure or self.secured())}"
            log.info("restarting Kafka with the secured listeners (its data stays)")
            self.proc.stop()
        ports = [self.cfg.kafka_port, self.cfg.kafka_controller_port]
        if secure:
            ports += [self.cfg.kafka_secure_port, self.cfg.kafka_mtls_port]
        for port in ports:
            if port_open(port):
                raise StackError(
                    f"port {port} on 127.0.0.1 is taken by a process this stack did not start; stop it or choose other "
                    f"ports (IOT_KAFKA_PORT / IOT_KAFKA_CONTROLLER_PORT / IOT_KAFKA_SECURE_PORT / IOT_KAFKA_MTLS_PORT)"
                )
        jars = ensure_kafka_jars()
        classpath = f"{jars}/*"
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        if secure:
            self.cfg.secure.ensure()
        write_private(self.properties_file, kafka_properties(self.cfg, data, secure))  # holds the PLAIN user's password
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed to run Kafka; install it (apt-get install openjdk-17-jre-headless)")
        if not (data / "meta.properties").exists():  # format the storage once
            result = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                 "-c", str(self.properties_file), "--ignore-formatted"],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise StackError(f"formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.proc.spawn(
            [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={logs}",
             "-cp", classpath, "kafka.Kafka", str(self.properties_file)]
        )
        wait_until(lambda: kafka_answers(self.cfg.kafka_bootstrap), self.cfg.ready_timeout_s, "Kafka", self.proc)
        if secure:
            self._secure_users()
        return f"Kafka started (pid {self.proc.pid()}) on {self._where(secure)}; logs in {logs}"

    def _where(self, secure: bool) -> str:
        if not secure:
            return self.cfg.kafka_bootstrap
        return (f"{self.cfg.kafka_bootstrap}, SASL_SSL on {self.cfg.kafka_secure_bootstrap}, "
                f"mutual TLS on {self.cfg.kafka_mtls_bootstrap}")

    def _secure_users(self) -> None:
        """The SCRAM user's credentials, set through the plaintext listener
        (an upsert: the same password again is harmless), then every secured
        way in is tried until it answers."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

        password = self.cfg.secure.passwords().kafka_scram.encode()
        admin = AdminClient({"bootstrap.servers": self.cfg.kafka_bootstrap, "log_level": 0})
        for mechanism in SCRAM_MECHANISMS:  # one request each: a request may name a user once
            info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 8192)
            upsert = UserScramCredentialUpsertion(KAFKA_SCRAM_USER, info, password)
            try:
                admin.alter_user_scram_credentials([upsert], request_timeout=30)[KAFKA_SCRAM_USER].result()
            except KafkaException as exc:
                raise StackError(f"setting the SCRAM user's {mechanism} credentials failed: {exc.args[0]}") from None
        for how in ("scram", "plain", "mtls"):
            settings = self.cfg.kafka_client_settings(how)
            wait_until(lambda: kafka_answers(settings["bootstrap.servers"], settings=settings),
                       self.cfg.ready_timeout_s, f"Kafka's secured listener ({how}, {settings['bootstrap.servers']})", self.proc)

    def down(self) -> str:
        return "Kafka stopped" if self.proc.stop() else "Kafka was not running"

    def status(self) -> str:
        pid = self.proc.pid()
        if pid is None:
            return f"Kafka     stopped  (port {self.cfg.kafka_port})"
        state = "answering" if kafka_answers(self.cfg.kafka_bootstrap) else "NOT answering"
        return f"Kafka     running  pid {pid}, {self._where(self.secured())}, {state}; logs {self.folder / 'logs'}"


# --- RabbitMQ --------------------------------------------------------------


def rabbitmq_answers(url: str, ca_file: Path | None = None) -> bool:
    """An AMQP connection opens (an `amqps://` one verifying the broker against `ca_file`)."""
    import ssl

    import pika

    params = pika.URLParameters(url)
    if ca_file is not None:
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=str(ca_file)), params.host)
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
        return True
    except Exception:  # pika raises many AMQP/connection error types
        return False


def ensure_rabbitmq_installed() -> None:
    """Install Debian's rabbitmq-server when missing (needs root)."""
    if RABBITMQ_SERVER.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError("rabbitmq-server is not installed: run `sudo apt-get install rabbitmq-server`")
    log.info("installing Debian's rabbitmq-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "rabbitmq-server"]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")


class LocalRabbitMQ:
    """RabbitMQ on loopback with its own data folder and node name.

    The Erlang port mapper (epmd) is started by the stack only when none is
    listening, so `down` never stops one that belongs to someone else.
    """

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.folder = cfg.home / "rabbitmq"
        self.proc = ManagedProcess("rabbitmq", self.folder, "rabbit")
        self.epmd = ManagedProcess("epmd", cfg.home / "epmd", "epmd")

    def running_pid(self) -> int | None:
        return self.proc.pid()

    def _env(self) -> dict[str, str]:
        home = self.folder / "home"
        for sub in ("home", "mnesia", "logs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        return dict(
            os.environ,
            HOME=str(home),
            RABBITMQ_HOME="/usr/lib/rabbitmq",
            RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.folder / "logs"),
            RABBITMQ_NODENAME=f"iotmon{self.cfg.rabbitmq_port}@localhost",  # one node name per stack
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.cfg.rabbitmq_port),
            RABBITMQ_DIST_PORT=str(self.cfg.rabbitmq_dist_port),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.folder / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.folder / "rabbitmq"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.cfg.epmd_port),
        )

    @property
    def config_file(self) -> Path:
        return self.folder / "rabbitmq.conf"  # RABBITMQ_CONFIG_FILE names it without the extension

    def secured(self) -> bool:
        """Whether the node was started with the TLS listener."""
        try:
            return "listeners.ssl" in self.config_file.read_text()
        except OSError:
            return False

    @property
    def tls_url(self) -> str:
        return self.cfg.secure_rabbitmq_url()

    def up(self, secure: bool = False) -> str:
        if self.proc.pid() is not None:
            if not secure or self.secured():
                wait_until(lambda: rabbitmq_answers(self.cfg.rabbitmq_url), self.cfg.ready_timeout_s, "RabbitMQ", self.proc)
                if secure:
                    self._secure_user()
                return f"RabbitMQ already running (pid {self.proc.pid()}) on {self._where(secure or self.secured())}"
            log.info("restarting RabbitMQ with the TLS listener (its data stays)")
            self.proc.stop()
        ports = [self.cfg.rabbitmq_port, self.cfg.rabbitmq_dist_port] + ([self.cfg.rabbitmq_tls_port] if secure else [])
        for port in ports:
            if port_open(port):
                raise StackError(
                    f"port {port} on 127.0.0.1 is taken by a process this stack did not start; "
                    f"stop it or choose other ports (IOT_RABBITMQ_PORT / IOT_RABBITMQ_DIST_PORT / IOT_RABBITMQ_TLS_PORT)"
                )
        ensure_rabbitmq_installed()
        env = self._env()
        if secure:
            self.cfg.secure.ensure()
            self.config_file.write_text(self._tls_config())
        else:
            self.config_file.unlink(missing_ok=True)
        if not port_open(self.cfg.epmd_port) and self.epmd.pid() is None:
            epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
            self.epmd.folder.mkdir(parents=True, exist_ok=True)
            self.epmd.spawn([epmd, "-address", "127.0.0.1", "-port", str(self.cfg.epmd_port)])
            wait_until(lambda: port_open(self.cfg.epmd_port), 10, "epmd", self.epmd)
        self.proc.spawn([str(RABBITMQ_SERVER)], env=env)
        wait_until(lambda: rabbitmq_answers(self.cfg.rabbitmq_url), self.cfg.ready_timeout_s, "RabbitMQ", self.proc)
        if secure:
            self._secure_user()
        return f"RabbitMQ started (pid {self.proc.pid()}) on {self._where(secure)}; logs in {self.folder / 'logs'}"

    def _where(self, secure: bool) -> str:
        plain = f"127.0.0.1:{self.cfg.rabbitmq_port} (guest/guest)"
        return f"{plain}, TLS on 127.0.0.1:{self.cfg.rabbitmq_tls_port}" if secure else plain

    def _tls_config(self) -> str:
        tls = self.cfg.secure.tls
        return "\n".join([
            f"listeners.ssl.local = 127.0.0.1:{self.cfg.rabbitmq_tls_port}",
            f"ssl_options.cacertfile = {tls.ca}",
            f"ssl_options.certfile = {tls.server_cert}",
            f"ssl_options.keyfile = {tls.server_key}",
            "ssl_options.verify = verify_peer",  # a client certificate, when one is offered, must come from the CA
            "ssl_options.fail_if_no_peer_cert = false",
            "",
        ])

    def _secure_user(self) -> None:
        """The stack's own user, created (or its password set again) through
        a definitions file, unless it can already log in over TLS."""
        ca = self.cfg.secure.tls.ca
        if rabbitmq_answers(self.tls_url, ca):
            return
        definitions = self.folder / "definitions.json"
        write_private(definitions, rabbitmq_definitions(self.cfg.secure.passwords().rabbitmq))
        try:
            result = subprocess.run([str(RABBITMQCTL), "import_definitions", str(definitions)],
                                    capture_output=True, text=True, env=self._env(), timeout=120)
        finally:
            definitions.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"creating RabbitMQ's user failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        wait_until(lambda: rabbitmq_answers(self.tls_url, ca), self.cfg.ready_timeout_s,
                   f"RabbitMQ's TLS listener (127.0.0.1:{self.cfg.rabbitmq_tls_port})", self.proc)

    def down(self) -> str:
        stopped = self.proc.stop()
        self.epmd.stop()
        return "RabbitMQ stopped" if stopped else "RabbitMQ was not running"

    def status(self) -> str:
        pid = self.proc.pid()
        if pid is None:
            return f"RabbitMQ  stopped  (port {self.cfg.rabbitmq_port})"
        state = "answering" if rabbitmq_answers(self.cfg.rabbitmq_url) else "NOT answering"
        return f"RabbitMQ  running  pid {pid}, {self._where(self.secured())}, {state}; logs {self.folder / 'logs'}"


class LocalStack:
    """Both brokers together, in a fixed order."""

    def __init__(self, cfg: StackConfig | None = None):
        self.cfg = cfg or StackConfig.from_env()
        self.kafka = LocalKafka(self.cfg)
        self.rabbitmq = LocalRabbitMQ(self.cfg)

    def up(self, secure: bool = False) -> list[str]:
        """Start what is not running; with `secure`, the secured listeners
        too (restarting a broker that runs without them), and `secure.env`."""
        self.cfg.home.mkdir(parents=True, exist_ok=True)
        lines = [self.kafka.up(secure), self.rabbitmq.up(secure)]
        if secure:
            env_file = self.cfg.secure.write_env(self.cfg.kafka_secure_bootstrap, self.cfg.kafka_mtls_bootstrap,
                                                 self.cfg.rabbitmq_tls_port)
            lines.append(f"secured listeners' settings and credentials: {env_file} (load with: set -a; . {env_file}; set +a)")
        return lines

    def secured(self) -> bool:
        """Both brokers run with their secured listeners."""
        return self.running() and self.kafka.secured() and self.rabbitmq.secured()

    def down(self) -> list[str]:
        return [self.rabbitmq.down(), self.kafka.down()]

    def status(self) -> list[str]:
        return [self.kafka.status(), self.rabbitmq.status()]

    def running(self) -> bool:
        return self.kafka.running_pid() is not None and self.rabbitmq.running_pid() is not None
