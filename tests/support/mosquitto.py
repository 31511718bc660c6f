"""A real mosquitto broker on a free loopback port, for tests.

Usage::

    from tests.support.mosquitto import Broker, make_tls_material

    with Broker(tmp_path) as broker:                 # anonymous
        ... broker.host, broker.port ...
        broker.stop(kill=True); broker.start()      # same port again

    Broker(tmp_path, users={"va": "s3cret"})         # password file, anonymous refused
    Broker(tmp_path, tls=make_tls_material(tmp_path))  # TLS with a throwaway CA

The config is generated per broker (``log_dest stderr``; ``user root`` keeps mosquitto
from dropping to the ``mosquitto`` user, which could not read files in pytest's 0700
temporary folders). Retained messages do not survive a restart (``persistence false``),
like a broker that lost its database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def mosquitto_available() -> bool:
    """True when the mosquitto binary exists (tests skip otherwise)."""
    return Path(MOSQUITTO).is_file() and os.access(MOSQUITTO, os.X_OK)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1/localhost and a client pair."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path
    """A second, unrelated CA: a client trusting only it must refuse the broker."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=folder)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(key),
        "-sha256",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        str(cert),
        cwd=folder,
    )
    return key, cert


def _make_leaf(folder: Path, name: str, ca_key: Path, ca_cert: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext_file = folder / f"{name}.ext"
    ext_file.write_text(ext, encoding="utf-8")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=folder)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr), cwd=folder)
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        str(ext_file),
        "-out",
        str(cert),
        cwd=folder,
    )
    return key, cert


def make_tls_material(folder: Path) -> TlsMaterial:
    """Generate a CA, a server cert (SAN 127.0.0.1, localhost), a client cert and a second CA."""
    folder = Path(folder) / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca(folder, "test-ca")
    server_key, server_cert = _make_leaf(
        folder,
        "server",
        ca_key,
        ca_cert,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client_key, client_cert = _make_leaf(folder, "client", ca_key, ca_cert, "extendedKeyUsage=clientAuth\n")
    _, other_ca = _make_ca(folder, "other-ca")
    return TlsMaterial(ca_cert, server_cert, server_key, client_cert, client_key, other_ca)


class Broker:
    """One mosquitto process with a generated config; restartable on the same port."""

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TlsMaterial | None = None,
        require_client_cert: bool = False,
        port: int | None = None,
        name: str = "broker",
    ) -> None:
        self.folder = Path(folder) / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users = dict(users or {})
        self.tls = tls
        self.config_file = self.folder / "mosquitto.conf"
        self.log_file = self.folder / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: object | None = None
        self._write_config(require_client_cert)

    def _write_config(self, require_client_cert: bool) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "user root",
        ]
        if self.users:
            passwd = self.folder / "passwd"
            passwd.write_text("", encoding="utf-8")
            for user, password in self.users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
            if require_client_cert:
                lines.append("require_certificate true")
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        """Start mosquitto and wait until it accepts TCP connections."""
        if self.running:
            return self
        log = self.log_file.open("ab")
        self._log_handle = log
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_file)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                return self
            time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log()}")

    def stop(self, *, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the broker: SIGKILL (a crash: wills fire) or SIGTERM (a clean stop)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        handle = self._log_handle
        self._log_handle = None
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]

    def restart(self, *, kill: bool = True, down_s: float = 0.0) -> None:
        """Stop (killed by default) and start again on the same port after ``down_s``."""
        self.stop(kill=kill)
        if down_s:
            time.sleep(down_s)
        self.start()

    def log(self) -> str:
        """The broker's log so far."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def client_tls_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        """An SSL context trusting the test CA (for hand-made clients)."""
        if self.tls is None:
            raise RuntimeError("broker has no TLS")
        return ssl.create_default_context(cafile=str(ca_file or self.tls.ca_file))

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
