"""The application's own OPC UA certificate (made on first use) and encryption of stored credentials.

OPC UA passwords are kept encrypted (Fernet) with a key from ``OPCUA_CREDENTIAL_KEY`` or, when unset,
a key generated once under ``instance/opcua/``; the audit trail only records that they changed. A
password in the environment (``OPCUA_PASSWORD_<ASSET CODE>``, non-alphanumerics as ``_``) wins.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

APPLICATION_URI = "urn:nkmes:collector"


def opcua_dir() -> Path:
    from config import _instance_dir

    path = Path(os.environ.get("OPCUA_PKI_DIR") or _instance_dir() / "opcua")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fernet() -> Fernet:
    configured = os.environ.get("OPCUA_CREDENTIAL_KEY")
    if configured:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(configured.encode()).digest()))
    key_file = opcua_dir() / "credential.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
        key_file.chmod(0o600)
    return Fernet(key_file.read_bytes().strip())


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None  # a key rotated without re-entering the password: the connection reports it


def password_for(asset_code: str, encrypted: str | None) -> str | None:
    """The OPC UA password of an asset: from the environment if set there, else the stored one."""
    env_name = "OPCUA_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", asset_code.upper())
    return os.environ.get(env_name) or decrypt_secret(encrypted)


async def ensure_certificate(directory: Path | None = None, *, name: str = "nkmes",
                             application_uri: str = APPLICATION_URI, server: bool = False) -> tuple[Path, Path]:
    """The application's certificate and key (DER, PEM), generated self-signed on first use."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    directory = directory or opcua_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}-cert.der", directory / f"{name}-key.pem"
    if not cert.exists() or not key.exists():
        usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else \
            [ExtendedKeyUsageOID.CLIENT_AUTH]
        await setup_self_signed_certificate(key, cert, application_uri, socket.gethostname(), usage,
                                            {"countryName": "EU", "organizationName": "NK MES",
                                             "commonName": f"NK MES {name}"})
        key.chmod(0o600)
    return cert, key


async def apply_security(client: object, policy: str, mode: str) -> None:
    """Configure an asyncua client for the asset's policy and mode with the application certificate."""
    if policy == "None":
        return
    from asyncua import ua
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    cert, key = await ensure_certificate()
    client.application_uri = APPLICATION_URI  # type: ignore[attr-defined]
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),  # type: ignore[attr-defined]
                              mode=getattr(ua.MessageSecurityMode, mode))
