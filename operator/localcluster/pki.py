"""Certificates and keys for the local cluster, made with the openssl CLI (Debian `openssl`, tests/system-deps.sh).

One throw-away CA signs the API server's serving certificate and one client certificate per component, so
each component authenticates as itself (admin, controller-manager, scheduler, kwok, the local node) and RBAC
or the Node authorizer decides what it may do. Keys are ECDSA P-256: generating them takes milliseconds.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PkiError("openssl not found: install it with `bash tests/system-deps.sh` (Debian package openssl)")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PkiError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


class CertificateAuthority:
    """A CA in `directory` (ca.crt, ca.key) that issues serving and client certificates."""

    def __init__(self, directory: Path, common_name: str = "tpuserve-test-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.cert = directory / "ca.crt"
        self.key = directory / "ca.key"
        _ec_key(self.key)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-subj", f"/CN={common_name}", "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(self.cert),
        )  # fmt: skip

    def issue(
        self,
        name: str,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
    ) -> KeyPair:
        """A certificate for a client (CN = user, O = groups) or, with names/IPs, a server."""
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        _ec_key(pair.key)
        subject = "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"
        serving = bool(server_names or server_ips)
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={'serverAuth' if serving else 'clientAuth'}",
        ]
        if serving:
            alt_names = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
            extensions.append("subjectAltName=" + ",".join(alt_names))
        addext: list[str] = []
        for extension in extensions:
            addext += ["-addext", extension]
        _openssl(
            "req", "-x509", "-new", "-key", str(pair.key), "-subj", subject, "-days", "3650",
            "-CA", str(self.cert), "-CAkey", str(self.key), *addext, "-out", str(pair.cert),
        )  # fmt: skip
        return pair


def service_account_keys(directory: Path) -> KeyPair:
    """The key pair the API server signs service-account tokens with (cert = the public key, PEM)."""
    key = directory / "sa.key"
    public = directory / "sa.pub"
    _ec_key(key)
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(public))
    return KeyPair(public, key)
