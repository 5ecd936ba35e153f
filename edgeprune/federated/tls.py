"""Credentials for a secure Flower deployment: a certificate authority, the SuperLink's TLS
certificate (valid for the host names and addresses the devices dial), and one key pair per
device for SuperNode authentication (EC P-384, OpenSSH format, as `flower-supernode
--auth-supernode-private-key` and `flwr supernode register` read them).

Meant for a fleet one operator controls; an organisation with its own PKI uses its own
certificates with the same flags. Private keys are written readable by their owner only.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from edgeprune.errors import ConfigError


def make_credentials(out: str | os.PathLike, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                     devices: int = 2, days: int = 365, force: bool = False) -> dict[str, list[str]]:
    """Write ca.crt, server.pem, server.key and device{i}.key / device{i}.pub (i = 1..devices)
    to the new folder `out`; returns the file names by role."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from edgeprune.outputs import writing

    if not hosts:
        raise ConfigError("give at least one host name or address the devices will connect to (--host)")
    if not 0 <= devices <= 10_000 or not 1 <= days <= 3650:
        raise ConfigError("devices must be 0-10000 and days 1-3650")
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not h or any(c.isspace() for c in h) or len(h) > 253:
                raise ConfigError(f"{h!r} is not a host name or IP address") from None
            sans.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(name("edgeprune federation CA")).issuer_name(name("edgeprune federation CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem, pkcs8, none = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    files: dict[str, list[str]] = {"ca": ["ca.crt"], "server": ["server.pem", "server.key"], "devices": []}
    with writing(out, force=force, kind="credentials") as tmp:
        (tmp / "ca.crt").write_bytes(ca.public_bytes(pem))
        (tmp / "server.pem").write_bytes(cert.public_bytes(pem))
        _private(tmp / "server.key", key.private_bytes(pem, pkcs8, none))
        _private(tmp / "ca.key", ca_key.private_bytes(pem, pkcs8, none))  # to issue a new server cert later
        for i in range(1, devices + 1):
            k = ec.generate_private_key(ec.SECP384R1())
            _private(tmp / f"device{i}.key", k.private_bytes(pem, serialization.PrivateFormat.OpenSSH, none))
            (tmp / f"device{i}.pub").write_bytes(k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                             serialization.PublicFormat.OpenSSH) + b"\n")
            files["devices"].append(f"device{i}.key")
    return files


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def read_pem(path: str | os.PathLike | None, what: str) -> bytes | None:
    """A PEM file's bytes, or a clear error naming the flag's file."""
    if path is None:
        return None
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {p} cannot be read: {exc.strerror}") from None
    if b"-----BEGIN" not in data[:4096]:
        raise ConfigError(f"{what} {p} is not a PEM file")
    return data
