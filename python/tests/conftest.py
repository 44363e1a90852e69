"""A real trainerd for the client's tests: started on free loopback ports with a
temporary data root, stopped (and its workers ended) by pid when the test ends."""
import os
import signal
import socket
import subprocess
import time

import pytest

BUILD = os.environ.get("TRAINERD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
FASHION = "/usr/share/datasets/fashion-mnist"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, root: str, extra=()):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.port = free_port()
        self.extra = list(extra)
        self.process = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        with open(os.path.join(self.root, "admin.token")) as f:
            return f.readline().strip()

    def start(self) -> None:
        log = open(os.path.join(self.root, "trainerd.log"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(BUILD, "server", "trainerd"), "--listen", self.address, "--metrics-port", "0",
             "--http-port", "0", "--data-root", self.root, "--grace-period", "10"] + self.extra,
            stdout=log, stderr=log)
        for _ in range(200):
            if os.path.exists(os.path.join(self.root, "admin.token")):
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("trainerd did not start: " + open(os.path.join(self.root, "trainerd.log")).read())

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def add_user(self, name: str) -> str:
        out = subprocess.run([os.path.join(BUILD, "server", "trainerd"), "user", "add", "--data-root", self.root, name],
                             capture_output=True, text=True, check=True).stdout
        return out[out.index("trd_"):].split()[0]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.kill9()
        # Workers run in their own sessions: end the ones of this data root.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if "trainer-worker" in cmdline and self.root in cmdline:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(str(tmp_path / "root"))
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    import trainerd

    with trainerd.Client(server=daemon.address, token=daemon.admin_token) as c:
        yield c


def fashion_job(args: dict) -> dict:
    """A small Fashion-MNIST job in the YAML form, `args` its training_args."""
    import trainerd

    return trainerd.spec(
        model={"type": "mlp", "hidden_sizes": [32]}, args=args,
        train={"path": f"{FASHION}/train-images-idx3-ubyte.gz", "labels_path": f"{FASHION}/train-labels-idx1-ubyte.gz",
               "limit": 1000},
        eval_split=0.2, mean=0.286, std=0.353, metrics=["accuracy"])
