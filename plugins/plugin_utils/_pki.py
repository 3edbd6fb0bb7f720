# -*- coding: utf-8 -*-
# Copyright (c) crosshost.ambassador contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to crosshost.ambassador: not for use by other collections.
"""The controller's small PKI for mutual TLS between ambassadors (uses ``cryptography``).

A CA (made here, or the user's) signs one key and certificate per host, valid
for the host's inventory name and advertise address and for both TLS client and
server use. Files are (re)made only when missing, no longer matching the CA or
the names, or expiring within :data:`RENEW_BEFORE`; otherwise nothing is written.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import traceback

# Guarded like community.docker guards its SDK: importing this file never fails,
# the tls action reports a missing library (ansible-core itself requires cryptography).
try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - cryptography comes with ansible-core
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

CA_DAYS = 3650
HOST_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)


class PKIError(Exception):
    """A CA or certificate could not be read or written; the message says which and why."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path, data, mode):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(subject, issuer, days, extensions, files, signer=None):
    """Make a key and a certificate for ``subject`` (a name), valid for ``days``, signed by ``signer`` (the
    issuer's key; None: self-signed) with ``extensions`` (``(extension, critical)``), and write them to
    ``files`` (``(certificate path, key path)``). Returns ``(certificate, key)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(signer or key, hashes.SHA256())
    _write(files[1], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(files[0], _pem(cert), 0o644)
    return cert, key


def _read_pair(cert_path, key_path):
    """A PEM certificate and its unencrypted key (OSError or ValueError when unreadable)."""
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    with open(key_path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    return cert, key


def _load(cert_path, key_path):
    try:
        return _read_pair(cert_path, key_path)
    except (OSError, ValueError) as exc:
        raise PKIError("cannot read the CA %s / %s: %s" % (cert_path, key_path, exc))


def _not_after(cert):
    return cert.not_valid_after_utc if hasattr(cert, "not_valid_after_utc") else \
        cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def ensure_ca(pki_dir, ca_cert=None, ca_key=None, write=True):
    """The CA certificate and key: the user's (``ca_cert``/``ca_key``) or ``pki_dir``'s own, made if missing.

    :returns: ``(certificate, key, changed)``; with ``write=False`` nothing is
        written and a missing CA is returned as ``(None, None, True)``.
    """
    if ca_cert or ca_key:
        if not (ca_cert and ca_key):
            raise PKIError("ambassador_tls_ca_cert and ambassador_tls_ca_key go together: set both or neither")
        cert, key = _load(ca_cert, ca_key)
        return cert, key, False
    cert_path, key_path = os.path.join(pki_dir, "ca.pem"), os.path.join(pki_dir, "ca.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        cert, key = _load(cert_path, key_path)
        if _not_after(cert) - RENEW_BEFORE > _now():
            return cert, key, False
    if not write:
        return None, None, True
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"crosshost.ambassador CA")])
    cert, key = _issue(name, name, CA_DAYS, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False,
                       decipher_only=False), True)], (cert_path, key_path))
    return cert, key, True


def _names(host, addresses):
    names = [x509.DNSName(host)]
    for address in addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def host_files(pki_dir, host):
    """Where a host's CA certificate, certificate and key are kept on the controller."""
    base = os.path.join(pki_dir, "hosts", host)
    return dict((name, os.path.join(base, name)) for name in ("ca.pem", "cert.pem", "key.pem"))


def fingerprint(files):
    """Identifies a host's TLS material (changes whenever any file does)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        with open(files[name], "rb") as handle:
            digest.update(handle.read())
    return "sha256:" + digest.hexdigest()


def _current(files, ca_cert, wanted_names):
    """True when the host's files exist, match the CA and the names, and are not about to expire."""
    try:
        cert, key = _read_pair(files["cert.pem"], files["key.pem"])
        with open(files["ca.pem"], "rb") as handle:
            ca_pem = handle.read()
    except (OSError, ValueError):
        return False
    if ca_pem != _pem(ca_cert):
        return False
    if cert.issuer != ca_cert.subject or _not_after(cert) - RENEW_BEFORE <= _now():
        return False
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return sorted(map(repr, present)) == sorted(map(repr, wanted_names))


def ensure_host(pki_dir, host, addresses, ca_cert, ca_key, write=True):
    """A host's key and certificate, signed by the CA for ``host`` and its ``addresses``.

    :returns: ``(files, changed)``: the three file paths, and whether they were (or,
        with ``write=False``, would be) made anew.
    """
    files = host_files(pki_dir, host)
    wanted = _names(host, addresses)
    if ca_cert is not None and _current(files, ca_cert, wanted):
        return files, False
    if not write:
        return files, True
    _issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), ca_cert.subject, HOST_DAYS, [
        (x509.SubjectAlternativeName(wanted), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
        (files["cert.pem"], files["key.pem"]), signer=ca_key)
    _write(files["ca.pem"], _pem(ca_cert), 0o644)
    return files, True
