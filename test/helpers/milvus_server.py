"""Milvus server processes for tests and benchmarks: several processes connect to one by
http://127.0.0.1:<port>, and a test can stop and restart it on the same port and data
directory to simulate an outage. (milvus-lite binds 127.0.0.1; the Milvus 2.3 binary binds
its gRPC ports on every interface, as configured here.)

- MilvusLiteServer: `milvus-lite server` (pure Python, the milvus-lite package);
- EmbeddedMilvusServer: the real Milvus 2.3 standalone server of PyPI `milvus`.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ServerProcess:
    """A server child process on 127.0.0.1:port with its data in data_dir; subclasses give
    the command and the readiness check."""

    name = "server"

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir, self.port = Path(data_dir), port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"milvus-{self.port}.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict]:
        raise NotImplementedError

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def start(self, timeout_s: float = 120.0):
        """Start and wait until it serves (RuntimeError with the log tail if it exits)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd, env = self.command()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} server exited ({self.proc.returncode}): {tail}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} server did not serve on {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the server closes its logs and storage), SIGKILL after timeout_s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class MilvusLiteServer(_ServerProcess):
    """`milvus-lite server --data-dir <dir> --port <port>` in a child process."""

    name = "milvus-lite"

    def command(self) -> tuple[list[str], dict]:
        return [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", str(self.port), "--max-workers", "4"], dict(os.environ)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (milvus-lite closes its WAL), SIGKILL after 15 s."""
        super().stop(timeout_s)


#: Ports of the embedded server's components (its config template's *_port keys): each gets
#: a free local port, so the server collides neither with another one on this host nor
#: with a real Milvus on the default 19530.
EMBEDDED_PORT_KEYS = ("etcd_port", "root_coord_port", "proxy_internal_port", "query_coord_port", "query_node_port",
                      "index_coord_port", "index_node_port", "data_coord_port", "data_node_port")


GRACEFUL_STOP_S = 3  # seconds a SIGTERM waits for in-flight work (template: 1800)
SESSION_TTL_S = 10  # etcd session lease of the components (template: 30)


def embedded_unavailable() -> str:
    """Why the embedded Milvus server cannot run here ("" when it can be tried)."""
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return (f"the embedded Milvus wheel (PyPI milvus 2.3) ships a linux x86_64 binary only; this is "
                f"{sys.platform}/{platform.machine()}")
    try:
        import milvus  # noqa: F401
    except ImportError:
        return "PyPI milvus (the embedded Milvus 2.3 server) is not installed (requirements-python.txt pins it)"
    return ""


class EmbeddedMilvusServer(_ServerProcess):
    """The real Milvus 2.3 standalone server of PyPI `milvus` ("embedded Milvus": its own
    etcd, RocksMQ and local storage in data_dir), run directly rather than through the
    package's MilvusServer (whose stop() kills after 1 s and which cannot restart on the same
    data). The binaries are unpacked once into bin_dir (several servers may share it).
    Milvus keeps a pid lock in /run/milvus (else /tmp/milvus) named after `-alias`: each
    server gets its own alias, so several run side by side."""

    name = "embedded Milvus"

    def __init__(self, data_dir: Path, port: int | None = None, bin_dir: Path | None = None):
        super().__init__(data_dir, port)
        self.bin_dir = Path(bin_dir) if bin_dir else self.data_dir.parent / "milvus-bin"
        self.metrics_port = 0

    def _configure(self) -> None:
        """Write configs/milvus.yaml once (the same ports on every restart), unpack the binaries."""
        import milvus

        if not (self.data_dir / "configs" / "milvus.yaml").exists():
            socks = [socket.socket() for _ in range(len(EMBEDDED_PORT_KEYS) + 2)]
            for s in socks:  # all held open together: distinct ports
                s.bind(("127.0.0.1", 0))
            ports = [s.getsockname()[1] for s in socks]
            for s in socks:
                s.close()
            named = dict(zip(EMBEDDED_PORT_KEYS, ports))
            cfg = milvus.MilvusServerConfig(data_dir=str(self.data_dir), proxy_port=self.port, **named)
            # A stop waits for in-flight work up to this long (the template's 1800 s would
            # make a SIGTERM hang on the components waiting for each other).
            cfg.set("common.gracefulStopTimeout", GRACEFUL_STOP_S)
            # After a crash the restarted components wait for the dead ones' etcd sessions
            # to expire: 30 s with the template's TTL, SESSION_TTL_S here.
            cfg.set("common.session.ttl", SESSION_TTL_S)
            cfg.resolve()  # writes configs/milvus.yaml and the data and log folders
            self._etcd_ports(named["etcd_port"], ports[-2])
            (self.data_dir / "metrics_port").write_text(str(ports[-1]))
        self.metrics_port = int((self.data_dir / "metrics_port").read_text())
        milvus._initialize_data_files(str(self.bin_dir))  # bin_dir/bin; unpacked once (md5-checked)

    def _etcd_ports(self, client: int, peer: int) -> None:
        """The embedded etcd listens on etcd's defaults 2379/2380 unless told otherwise (a
        second server on the host would fail to start): its own config file, named in
        milvus.yaml's etcd.config.path (not in the package's template)."""
        etcd = self.data_dir / "configs" / "embed-etcd.yaml"
        etcd.write_text(f"name: default\nlisten-client-urls: http://127.0.0.1:{client}\n"
                        f"advertise-client-urls: http://127.0.0.1:{client}\n"
                        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
                        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
                        f"initial-cluster: default=http://127.0.0.1:{peer}\n")
        yaml = self.data_dir / "configs" / "milvus.yaml"
        text = yaml.read_text()
        assert "\netcd:\n" in text, "the embedded Milvus config template changed: no top-level etcd section"
        yaml.write_text(text.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd}\n", 1))

    def command(self) -> tuple[list[str], dict]:
        self._configure()
        bin_dir = self.bin_dir / "bin"
        env = dict(os.environ, DEPLOY_MODE="STANDALONE", METRICS_PORT=str(self.metrics_port),
                   LD_LIBRARY_PATH=os.pathsep.join([str(bin_dir), os.environ.get("LD_LIBRARY_PATH", "")]))
        return [str(bin_dir / "milvus"), "run", "standalone", "-alias", f"maqbool-{self.port}"], env

    def kill(self) -> None:
        """SIGKILL: a crash (what the server acknowledged must survive it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def ready(self) -> bool:
        """Milvus' health endpoint answers OK (the proxy port opens before the server serves)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1) as r:
                return b"OK" in r.read()
        except OSError:
            return False
