"""A Docker engine of the suite's own, to restart under a running dispatcher without touching
the machine's: a containerd of its own (as a distribution's containerd service is) and Debian's
`dockerd` on it, with their own roots, sockets, pid file and containerd namespace, a bridge of
its own and no iptables rules (the runners use the host's network, as the tests' do). The runner
image is copied into it from the machine's engine (`docker save | docker load`) once per suite
run.

Not `--bridge=none`: a daemon started so deletes the host's `docker0` (moby removes the default
bridge interface when the bridge is disabled), and the machine's engine then fails every
container on its default network ("could not find bridge docker0"). The bridge here is made
before the daemon starts, with an address in 198.18.0.0/15 (RFC 2544's benchmarking range), and
removed by `close`.

`restart(kill=False)` is `systemctl restart docker`: SIGTERM, the daemon stops its containers
(their stop signal, then SIGKILL after 10 s) and exits; `kill=True` is a crash: SIGKILL, the
daemon gone at once, its containers left running under containerd until the next daemon's
start stops them (no live-restore). Either way containerd stays up and the next daemon starts
on the same data.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # Debian's client, as scripts/docker-engine uses
CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"  # docker.io depends on it
CONTAINERD_CONFIG = """version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
"""
START_WAIT_S = 60.0


class Engine:
    def __init__(self, root: Path | None = None) -> None:
        # A short path: the socket's must fit a sockaddr_un (108 bytes).
        self.root = root or Path(tempfile.mkdtemp(prefix="forge-engine-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.containerd_socket = self.root / "containerd.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._containerd: subprocess.Popen[bytes] | None = None
        self.bridge = f"fch{random.randrange(1 << 32):08x}"  # an interface name: 15 at most
        self._bridge_made = False

    def _args(self) -> list[str]:
        config = self.root / "daemon.json"
        config.write_text("{}\n")  # not the machine's /etc/docker/daemon.json
        return [
            DOCKERD,
            f"--config-file={config}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host={self.host}",
            f"--containerd={self.containerd_socket}",
            "--containerd-namespace=forge-chaos",
            "--containerd-plugins-namespace=forge-chaos-plugins",
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip-masq=false",
            "--log-level=warn",
        ]

    def _start_containerd(self) -> None:
        config = self.root / "containerd.toml"
        config.write_text(CONTAINERD_CONFIG)
        args = [
            CONTAINERD,
            f"--config={config}",
            f"--address={self.containerd_socket}",
            f"--root={self.root / 'containerd'}",
            f"--state={self.root / 'containerd-state'}",
            "--log-level=warn",
        ]
        with (self.root / "containerd.log").open("ab") as log:
            self._containerd = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_WAIT_S
        while not self.containerd_socket.exists():
            if self._containerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {self.tail('containerd.log')}")
            time.sleep(0.1)

    def _make_bridge(self) -> None:
        subnet = random.randrange(512)  # a /24 of 198.18.0.0/15
        address = f"198.{18 + subnet // 256}.{subnet % 256}.1/24"
        for args in (
            ["link", "add", self.bridge, "type", "bridge"],
            ["addr", "add", address, "dev", self.bridge],
            ["link", "set", self.bridge, "up"],
        ):
            subprocess.run(["ip", *args], capture_output=True, text=True, check=True)
        self._bridge_made = True

    def start(self) -> None:
        if not self._bridge_made:
            self._make_bridge()
        if self._containerd is None:
            self._start_containerd()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self._args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_WAIT_S
        while not self.answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"dockerd exited {self._process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer in {START_WAIT_S:g} s: {self.tail()}")
            time.sleep(0.2)

    def stop(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=60)

    def restart(self, kill: bool = False, down_s: float = 0.0) -> None:
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        """The daemon, what it ran and its containerd stopped, their mounts and files removed."""
        if self._process is not None and self._process.poll() is None:
            self.docker("rm", "-f", *self.docker("ps", "-aq").split(), check=False)
        self.stop()
        containerd, self._containerd = self._containerd, None
        if containerd is not None and containerd.poll() is None:
            containerd.terminate()
            containerd.wait(timeout=30)
        with Path("/proc/self/mounts").open() as table:  # dockerd bind-mounts its roots on
            points = [line.split()[1] for line in table if f" {self.root}/" in line]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
            self._bridge_made = False

    def answers(self) -> bool:
        return (
            subprocess.run(
                [DOCKER, "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )

    def docker(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [DOCKER, "-H", self.host, *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def load(self, image: str) -> None:
        """`image` from the machine's engine into this one."""
        save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        load = subprocess.run(
            [DOCKER, "-H", self.host, "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"copying {image} into the chaos engine: {load.stderr.strip()}")

    def tail(self, name: str = "dockerd.log", lines: int = 20) -> str:
        log = self.root / name
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
