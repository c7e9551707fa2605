"""Local stand-ins for the public base image the Dockerfiles name (`ARG BASE=python:3.13-slim-trixie`).

No image registry is reachable here, so the base is made from Debian packages: `debootstrap --variant=minbase
trixie` with python3 (3.13, as the public image), python3-venv and ca-certificates, then `docker import`ed.
The root filesystem tarball is cached under the tools cache (keyed by suite, packages and mirror), the imported
image lives in the daemon's cached data-root (labelled with its key), so only the first run pays ~4 minutes.

Only this local base carries this machine's CA bundle (the one pip is configured with, for a TLS-intercepting
proxy), with PIP_CERT pointing at it; the Dockerfiles themselves never do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.images.docker import CACHE_ROOT, DockerDaemon

SUITE = "trixie"
MIRROR = os.environ.get("TPUSERVE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# The tag the tests pass as --build-arg BASE. Its Python is Debian's 3.13 (/usr/bin/python3); the public image's is
# python.org's 3.13 (/usr/local/bin/python3): same minor version, so the same wheels.
LOCAL_BASE = "tpuserve-local/python:3.13-slim-trixie"
PUBLIC_BASE = "python:3.13-slim-trixie"
LOCAL_CA_PATH = "/etc/ssl/certs/tpuserve-local-ca.crt"
KEY_LABEL = "dev.tpuserve.local-base-key"


def _rootfs_key() -> str:
    return hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]


def machine_ca_bundle() -> Path | None:
    """The CA bundle pip uses on this machine (PIP_CERT, else `pip config`), if any."""
    configured = os.environ.get("PIP_CERT")
    if not configured:
        out = subprocess.run(
            ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
        ).stdout
        for line in out.splitlines():
            name, _, value = line.partition("=")
            if name.endswith(".cert"):
                configured = value.strip().strip("'\"")
    return Path(configured) if configured and Path(configured).is_file() else None


def rootfs_tarball() -> Path:
    """debootstrap's root filesystem as a tar, built once per key into the cache."""
    tarball = CACHE_ROOT / "debian-rootfs" / f"{SUITE}-minbase-{_rootfs_key()}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap not found: install it (bash tests/system-deps.sh)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
            check=True,
            capture_output=True,
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def ensure_local_base(daemon: DockerDaemon) -> str:
    """The local base image in `daemon` (imported when missing or stale); returns its tag."""
    ca = machine_ca_bundle()
    ca_hash = hashlib.sha256(ca.read_bytes()).hexdigest()[:12] if ca else "none"
    key = f"{_rootfs_key()}-{ca_hash}"
    found = daemon.run(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', LOCAL_BASE, check=False
    )
    if found.returncode == 0 and found.stdout.strip() == key:
        return LOCAL_BASE
    tarball = rootfs_tarball()
    changes = [
        f"LABEL {KEY_LABEL}={key}",
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["python3"]',
    ]
    with tempfile.TemporaryDirectory() as work:
        source = tarball
        if ca is not None:
            # Append the CA bundle to a copy of the rootfs tar (after ca-certificates, which rewrites its own).
            source = Path(work) / "rootfs.tar"
            shutil.copyfile(tarball, source)
            staged = Path(work) / "ca" / LOCAL_CA_PATH.lstrip("/")
            staged.parent.mkdir(parents=True)
            shutil.copyfile(ca, staged)
            subprocess.run(
                [
                    "tar",
                    "-C",
                    str(Path(work) / "ca"),
                    "--owner=0",
                    "--group=0",
                    "-rf",
                    str(source),
                    LOCAL_CA_PATH.lstrip("/"),
                ],
                check=True,
            )
            changes.append(f"ENV PIP_CERT={LOCAL_CA_PATH}")
        args = ["import"]
        for change in changes:
            args += ["--change", change]
        daemon.run(*args, str(source), LOCAL_BASE, timeout=600)
    return LOCAL_BASE
