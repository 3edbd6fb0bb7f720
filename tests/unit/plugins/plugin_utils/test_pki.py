"""The controller's PKI, with real keys and certificates in a temporary directory."""

import pytest
from cryptography import x509

from ansible_collections.crosshost.ambassador.plugins.plugin_utils._pki import (
    PKIError, ensure_ca, ensure_host, fingerprint)


def load(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def test_ca_and_host_files_are_made_once(tmp_path):
    ca, key, changed = ensure_ca(str(tmp_path))
    assert changed and ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    again, _unused, changed = ensure_ca(str(tmp_path))
    assert not changed and again == ca

    files, changed = ensure_host(str(tmp_path), "host2", ["10.77.0.12"], ca, key)
    assert changed
    cert = load(files["cert.pem"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["host2"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.77.0.12"]
    assert oct((tmp_path / "hosts" / "host2" / "key.pem").stat().st_mode & 0o777) == "0o600"
    before = fingerprint(files)
    assert ensure_host(str(tmp_path), "host2", ["10.77.0.12"], ca, key) == (files, False)
    assert fingerprint(files) == before


def test_host_files_are_made_anew_when_the_address_or_the_ca_changes(tmp_path):
    ca, key, _unused = ensure_ca(str(tmp_path / "a"))
    files, _unused = ensure_host(str(tmp_path), "host2", ["10.77.0.12"], ca, key)
    first = fingerprint(files)
    assert ensure_host(str(tmp_path), "host2", ["10.77.0.13"], ca, key)[1] is True
    second = fingerprint(files)
    other_ca, other_key, _unused = ensure_ca(str(tmp_path / "b"))
    assert ensure_host(str(tmp_path), "host2", ["10.77.0.13"], other_ca, other_key)[1] is True
    load(files["cert.pem"]).verify_directly_issued_by(other_ca)
    assert len({first, second, fingerprint(files)}) == 3


def test_check_mode_writes_nothing(tmp_path):
    assert ensure_ca(str(tmp_path), write=False) == (None, None, True)
    ca, key, _unused = ensure_ca(str(tmp_path))
    files, changed = ensure_host(str(tmp_path), "host1", [], ca, key, write=False)
    assert changed and not (tmp_path / "hosts").exists()


def test_a_users_ca_is_used_and_needs_both_files(tmp_path):
    ca, key, _unused = ensure_ca(str(tmp_path / "mine"))
    cert_path, key_path = str(tmp_path / "mine" / "ca.pem"), str(tmp_path / "mine" / "ca.key")
    loaded, _unused, changed = ensure_ca(str(tmp_path / "pki"), cert_path, key_path)
    assert loaded == ca and not changed and not (tmp_path / "pki").exists()
    with pytest.raises(PKIError, match="go together"):
        ensure_ca(str(tmp_path / "pki"), cert_path, None)
    with pytest.raises(PKIError, match="cannot read the CA"):
        ensure_ca(str(tmp_path / "pki"), cert_path + ".missing", key_path)
