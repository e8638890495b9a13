"""The trusted store: loading, signer ids, validity, reloading and key rotation."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from signing_helpers import JSON, T0, Clock

from signing import (
    Certificate,
    CertificateExpiredError,
    CertificateStore,
    KeyLoadError,
    UnsupportedKeyError,
    UntrustedSignerError,
    Verifier,
)
from signing.testing import Identity, make_identity


def write_cert(directory: Path, name: str, identity: Identity) -> Path:
    path = directory / name
    path.write_bytes(identity.cert_pem)
    return path


class TestCertificate:
    def test_ids(self, ecdsa384: Identity) -> None:
        cert = ecdsa384.certificate
        assert cert.fingerprint == cert.x509.fingerprint(hashes.SHA256())
        assert cert.signer_id == cert.fingerprint.hex()
        assert cert.auth_id == f"p384 {cert.x509.serial_number}"
        assert cert.key_type == "ecdsa"
        assert cert.subject == "CN=p384"

    def test_exactly_one_certificate_per_from_pem(
        self, ed25519: Identity, rsa2048: Identity
    ) -> None:
        with pytest.raises(
            KeyLoadError, match="holds 2 certificates; expected exactly one"
        ):
            Certificate.from_pem(ed25519.cert_pem + rsa2048.cert_pem)

    def test_a_corrupt_pem_is_a_load_error(self, ed25519: Identity) -> None:
        broken = ed25519.cert_pem.replace(b"\nM", b"\n!", 1)
        with pytest.raises(KeyLoadError, match="cannot parse the PEM certificate"):
            Certificate.from_pem(broken)

    def test_a_weak_certificate_key_is_refused(self) -> None:
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  the weak key under test
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(weak.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .sign(weak, hashes.SHA256())
        )
        with pytest.raises(
            UnsupportedKeyError, match="'CN=weak' is a 1024-bit RSA key"
        ):
            CertificateStore([cert.public_bytes(serialization.Encoding.PEM)])

    def test_equality_is_by_fingerprint(self, ed25519: Identity) -> None:
        again = Certificate.from_pem(ed25519.cert_pem)
        assert again == ed25519.certificate
        assert len({again, ed25519.certificate}) == 1
        assert again != object()

    def test_validity(self, ed25519: Identity) -> None:
        cert = ed25519.certificate
        assert cert.validity_problem(cert.not_valid_before) is None
        assert "expired at" in (cert.validity_problem(cert.not_valid_after) or "")
        before = cert.not_valid_before - timedelta(seconds=1)
        assert "is not valid before" in (cert.validity_problem(before) or "")


class TestStoreSources:
    def test_pem_bytes_text_and_objects(
        self, ed25519: Identity, rsa2048: Identity, ecdsa256: Identity
    ) -> None:
        store = CertificateStore(
            [ed25519.cert_pem, rsa2048.cert_pem.decode(), ecdsa256.certificate.x509]
        )
        assert len(store) == 3
        assert list(store) == [
            ed25519.certificate,
            rsa2048.certificate,
            ecdsa256.certificate,
        ]
        assert ed25519.certificate in store
        assert rsa2048.certificate.fingerprint in store
        assert rsa2048.certificate.auth_id in store
        assert 42 not in store

    def test_one_pem_with_several_certificates(
        self, ed25519: Identity, rsa2048: Identity
    ) -> None:
        assert len(CertificateStore(ed25519.cert_pem + rsa2048.cert_pem)) == 2

    def test_duplicates_count_once(self, ed25519: Identity) -> None:
        assert len(CertificateStore([ed25519.cert_pem, ed25519.certificate])) == 1

    def test_a_path_is_not_pem(self) -> None:
        with pytest.raises(KeyLoadError, match=r"use CertificateStore\.from_files"):
            CertificateStore(["trusted/worker.pem"])

    def test_other_objects_are_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="PEM bytes/str"):
            CertificateStore([42])  # type: ignore[list-item]

    def test_a_directory_like_celerys_cert_store(
        self, tmp_path: Path, ed25519: Identity, rsa2048: Identity, ecdsa256: Identity
    ) -> None:
        write_cert(tmp_path, "a.pem", ed25519)
        write_cert(tmp_path, "b.crt", rsa2048)
        write_cert(tmp_path, ".hidden.pem", ecdsa256)
        (tmp_path / "sub").mkdir()
        write_cert(tmp_path / "sub", "c.pem", ecdsa256)
        store = CertificateStore.from_directory(tmp_path)
        assert set(store) == {ed25519.certificate, rsa2048.certificate}
        assert {c.source for c in store} == {
            str(tmp_path / "a.pem"),
            str(tmp_path / "b.crt"),
        }
        assert (
            repr(store) == f"<CertificateStore 2 certificates from {str(tmp_path)!r}>"
        )

    def test_a_stray_file_in_the_directory_is_named(
        self, tmp_path: Path, ed25519: Identity
    ) -> None:
        write_cert(tmp_path, "a.pem", ed25519)
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(
            KeyLoadError, match=re.escape(repr(str(tmp_path / "notes.txt")))
        ):
            CertificateStore.from_directory(tmp_path)

    def test_a_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(KeyLoadError, match="cannot list the certificate directory"):
            CertificateStore.from_directory(tmp_path / "absent")

    def test_an_empty_directory_warns(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="signing"):
            store = CertificateStore.from_directory(tmp_path)
        assert len(store) == 0
        assert "holds no files" in caplog.text

    def test_files(self, tmp_path: Path, ed25519: Identity, rsa2048: Identity) -> None:
        a = write_cert(tmp_path, "a.pem", ed25519)
        b = write_cert(tmp_path, "b.pem", rsa2048)
        assert len(CertificateStore.from_files(a, b)) == 2
        with pytest.raises(KeyLoadError, match="cannot read the certificate file"):
            CertificateStore.from_files(tmp_path / "absent.pem")

    def test_expired_certificates_load_with_a_warning(
        self, tmp_path: Path, ed25519: Identity, caplog: pytest.LogCaptureFixture
    ) -> None:
        now = datetime.now(timezone.utc)
        old = make_identity(
            "ed25519",
            common_name="old",
            not_before=now - timedelta(days=9),
            not_after=now - timedelta(days=1),
        )
        write_cert(tmp_path, "old.pem", old)
        write_cert(tmp_path, "current.pem", ed25519)
        with caplog.at_level(logging.WARNING, logger="signing"):
            store = CertificateStore.from_directory(tmp_path)
        # Unlike Celery's store, one expired certificate does not stop the others.
        assert len(store) == 2
        assert re.search(
            r"trusted certificate CN=old \(.*old.pem\) expired at", caplog.text
        )

    def test_a_negative_reload_interval_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="reload_interval"):
            CertificateStore.from_directory(tmp_path, reload_interval=-1)


class TestRotation:
    """Several certificates trusted at once; the store changes without a restart."""

    def test_each_message_is_checked_against_the_certificate_it_names(
        self, tmp_path: Path, clock: Clock
    ) -> None:
        # Two keys of one team (same CA), told apart by serial and fingerprint.
        ca = make_identity("rsa", common_name="Team CA")
        old = make_identity("rsa", common_name="worker", issuer=ca, serial=1)
        new = make_identity("ed25519", common_name="worker", issuer=ca, serial=2)
        write_cert(tmp_path, "old.pem", old)
        write_cert(tmp_path, "new.pem", new)
        verifier = Verifier(CertificateStore.from_directory(tmp_path), clock=clock)
        assert verifier.verify_auth(old.signer().sign_auth(b"1", **JSON)).body == b"1"
        assert verifier.verify(old.signer(clock=clock).sign(b"2", **JSON)).body == b"2"
        assert verifier.verify(new.signer(clock=clock).sign(b"3", **JSON)).body == b"3"

    def test_reload_adds_and_removes(
        self,
        tmp_path: Path,
        ed25519: Identity,
        ecdsa256: Identity,
        clock: Clock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        old_file = write_cert(tmp_path, "old.pem", ed25519)
        store = CertificateStore.from_directory(tmp_path)
        verifier = Verifier(store, clock=clock)
        from_old = ed25519.signer(clock=clock).sign(b"old", **JSON)
        from_new = ecdsa256.signer(clock=clock).sign(b"new", **JSON)
        with pytest.raises(UntrustedSignerError):
            verifier.verify(from_new)
        # Step 1 of a rotation: trust the new certificate too.
        write_cert(tmp_path, "new.pem", ecdsa256)
        with caplog.at_level(logging.INFO, logger="signing"):
            store.reload()
        assert "trusting 2 certificates" in caplog.text
        assert "(1 added, 0 removed)" in caplog.text
        assert verifier.verify(from_old).body == b"old"
        assert verifier.verify(from_new).body == b"new"
        # Step 2, once every signer has switched: stop trusting the old one.
        old_file.unlink()
        store.reload()
        assert verifier.verify(from_new).body == b"new"
        with pytest.raises(UntrustedSignerError):
            verifier.verify(from_old)

    def test_a_failed_reload_keeps_the_previous_certificates(
        self, tmp_path: Path, ed25519: Identity, clock: Clock
    ) -> None:
        write_cert(tmp_path, "a.pem", ed25519)
        store = CertificateStore.from_directory(tmp_path)
        (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
        with pytest.raises(KeyLoadError, match=r"broken\.pem"):
            store.reload()
        signed = ed25519.signer(clock=clock).sign(b"{}", **JSON)
        assert Verifier(store, clock=clock).verify(signed).body == b"{}"

    def test_an_unknown_signer_triggers_a_reload_when_configured(
        self, tmp_path: Path, ed25519: Identity, ecdsa256: Identity, clock: Clock
    ) -> None:
        write_cert(tmp_path, "a.pem", ed25519)
        eager = CertificateStore.from_directory(tmp_path, reload_interval=0)
        lazy = CertificateStore.from_directory(tmp_path, reload_interval=3600)
        write_cert(tmp_path, "b.pem", ecdsa256)
        signed = ecdsa256.signer(clock=clock).sign(b"{}", **JSON)
        assert Verifier(eager, clock=clock).verify(signed).body == b"{}"
        with pytest.raises(UntrustedSignerError):
            Verifier(lazy, clock=clock).verify(signed)
        auth = make_identity("rsa", common_name="late")
        write_cert(tmp_path, "c.pem", auth)
        assert (
            Verifier(eager).verify_auth(auth.signer().sign_auth(b"1", **JSON)).body
            == b"1"
        )

    def test_a_failed_automatic_reload_is_logged_not_raised(
        self,
        tmp_path: Path,
        ed25519: Identity,
        stranger: Identity,
        clock: Clock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        write_cert(tmp_path, "a.pem", ed25519)
        store = CertificateStore.from_directory(tmp_path, reload_interval=0)
        (tmp_path / "broken.pem").write_text("junk")
        signed = stranger.signer(clock=clock).sign(b"{}", **JSON)
        with (
            caplog.at_level(logging.WARNING, logger="signing"),
            pytest.raises(UntrustedSignerError),
        ):
            Verifier(store, clock=clock).verify(signed)
        assert "keeping the previous ones" in caplog.text
        assert len(store) == 1

    def test_replace_rotates_an_in_memory_store(
        self, ed25519: Identity, ecdsa256: Identity, clock: Clock
    ) -> None:
        store = CertificateStore([ed25519.cert_pem])
        verifier = Verifier(store, clock=clock)
        signed = ecdsa256.signer(clock=clock).sign(b"{}", **JSON)
        store.replace([ed25519.cert_pem, ecdsa256.cert_pem])
        assert verifier.verify(signed).body == b"{}"
        store.replace(ed25519.cert_pem)
        with pytest.raises(UntrustedSignerError):
            verifier.verify(signed)
        store.reload()  # nothing to read: the in-memory certificates stay
        assert list(store) == [ed25519.certificate]

    def test_an_expiring_certificate_is_refused_with_the_reason(
        self, tmp_path: Path, clock: Clock
    ) -> None:
        end = datetime.fromtimestamp(T0, timezone.utc) + timedelta(hours=1)
        expiring = make_identity("ecdsa", common_name="expiring", not_after=end)
        write_cert(tmp_path, "e.pem", expiring)
        verifier = Verifier(CertificateStore.from_directory(tmp_path), clock=clock)
        signed = expiring.signer(clock=clock).sign(b"{}", **JSON)
        assert verifier.verify(signed).body == b"{}"
        clock.now = T0 + 3600
        with pytest.raises(CertificateExpiredError, match="CN=expiring\\) expired at"):
            verifier.verify(expiring.signer(clock=clock).sign(b"{}", **JSON))
