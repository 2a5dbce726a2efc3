"""The lab CA, registry certificates, passwords and credential files (openssl, htpasswd)."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from labctl.paths import Paths
from labctl.util import atomic_write, run

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def ensure_ca(paths: Paths) -> None:
    """Create the lab CA once (kept across down/up so trust files stay valid)."""
    if paths.ca_cert.exists() and paths.ca_key.exists():
        return
    paths.ca_dir.mkdir(parents=True, exist_ok=True)
    paths.ca_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    run(
        ["openssl", "req", "-x509", *_EC, "-days", "3650", "-subj", "/CN=dcprestage lab CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", paths.ca_key, "-out", paths.ca_cert]
    )  # fmt: skip
    paths.ca_key.chmod(0o600)


def issue_server_cert(paths: Paths, cert: Path, key: Path, cn: str, sans: list[str]) -> None:
    """A TLS server certificate for sans (DNS names / IPs), signed by the lab CA."""
    alt = ",".join(f"IP:{san}" if san[0].isdigit() else f"DNS:{san}" for san in sans)
    cert.parent.mkdir(parents=True, exist_ok=True)
    run(
        ["openssl", "req", "-x509", "-CA", paths.ca_cert, "-CAkey", paths.ca_key, *_EC,
         "-days", "3650", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName={alt}",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth",
         "-keyout", key, "-out", cert]
    )  # fmt: skip
    key.chmod(0o600)


def ensure_password(path: Path, prefix: str) -> str:
    """The password stored at path (0600), generated once as '<prefix>-<hex>-Pw!'."""
    if path.exists():
        return path.read_text().strip()
    password = f"{prefix}-{secrets.token_hex(6)}-Pw!"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, password + "\n", 0o600)
    return password


def sha512_crypt(password: str) -> str:
    """/etc/shadow hash of password (the password goes through stdin, never argv)."""
    return run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n").stdout.strip()


def write_htpasswd(path: Path, user: str, password: str) -> None:
    """bcrypt htpasswd file, as docker-registry's htpasswd auth wants it."""
    line = run(["htpasswd", "-niB", user], input=password + "\n").stdout.strip()
    atomic_write(path, line + "\n", 0o600)


def write_auth_file(path: Path, user: str, password: str, registries: list[str]) -> None:
    """containers-auth.json (skopeo --authfile / REGISTRY_AUTH_FILE) for the given host:ports."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    auths = {registry: {"auth": token} for registry in registries}
    atomic_write(path, json.dumps({"auths": auths}, indent=2) + "\n", 0o600)


def ensure_ssh_key(path: Path, comment: str) -> None:
    """An ed25519 SSH key pair at path / path.pub (0600), made once."""
    if path.exists() and Path(f"{path}.pub").exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    path.chmod(0o600)
