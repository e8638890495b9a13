"""Building signers: key files, passwords, key types, digests and file permissions."""

from __future__ import annotations

import logging
import os
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from signing_helpers import JSON

from signing import (
    DIGESTS,
    InsecureKeyFileWarning,
    KeyLoadError,
    Signer,
    UnsupportedKeyError,
)
from signing.testing import Identity, make_identity

PASSWORD = "correct horse battery staple"


class TestFromFiles:
    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ecdsa384", "ed25519"])
    def test_each_key_type_loads(
        self, identities: dict[str, Identity], tmp_path: Path, name: str
    ) -> None:
        key, cert = identities[name].write(tmp_path)
        signer = Signer.from_files(key=key, cert=cert)
        kinds = {
            "rsa2048": "rsa",
            "ecdsa256": "ecdsa",
            "ecdsa384": "ecdsa",
            "ed25519": "ed25519",
        }
        assert signer.key_type == kinds[name]
        assert signer.signer_id == identities[name].certificate.signer_id

    @pytest.mark.parametrize("password", [PASSWORD, PASSWORD.encode()])
    def test_an_encrypted_key_with_its_password(
        self, ed25519: Identity, tmp_path: Path, password: str | bytes
    ) -> None:
        key, cert = ed25519.write(tmp_path, password=PASSWORD)
        assert b"ENCRYPTED" in key.read_bytes()
        assert (
            Signer.from_files(key=key, cert=cert, password=password).key_type
            == "ed25519"
        )

    def test_a_wrong_password_says_so(self, ed25519: Identity, tmp_path: Path) -> None:
        key, cert = ed25519.write(tmp_path, password=PASSWORD)
        with pytest.raises(KeyLoadError, match="wrong password") as info:
            Signer.from_files(key=key, cert=cert, password="guess")
        assert "guess" not in str(info.value)
        assert str(key) in str(info.value)

    def test_a_missing_password_says_so(
        self, ed25519: Identity, tmp_path: Path
    ) -> None:
        key, cert = ed25519.write(tmp_path, password=PASSWORD)
        with pytest.raises(KeyLoadError, match="is encrypted: pass its password"):
            Signer.from_files(key=key, cert=cert)

    def test_a_password_for_a_plain_key_says_so(
        self, ed25519: Identity, tmp_path: Path
    ) -> None:
        key, cert = ed25519.write(tmp_path)
        with pytest.raises(
            KeyLoadError, match="not encrypted, but a password was given"
        ):
            Signer.from_files(key=key, cert=cert, password=PASSWORD)

    def test_a_file_that_is_not_a_key(self, ed25519: Identity, tmp_path: Path) -> None:
        _, cert = ed25519.write(tmp_path)
        cert.chmod(0o600)
        with pytest.raises(KeyLoadError, match="not a PEM private key"):
            Signer.from_files(key=cert, cert=cert)

    def test_a_missing_key_file(self, ed25519: Identity, tmp_path: Path) -> None:
        _, cert = ed25519.write(tmp_path)
        with pytest.raises(KeyLoadError, match="cannot read the private key file"):
            Signer.from_files(key=tmp_path / "absent.key", cert=cert)

    def test_a_missing_certificate_file(
        self, ed25519: Identity, tmp_path: Path
    ) -> None:
        key, _ = ed25519.write(tmp_path)
        with pytest.raises(KeyLoadError, match="cannot read the certificate file"):
            Signer.from_files(key=key, cert=tmp_path / "absent.pem")

    def test_a_certificate_file_that_is_not_one(
        self, ed25519: Identity, tmp_path: Path
    ) -> None:
        key, _ = ed25519.write(tmp_path)
        with pytest.raises(KeyLoadError, match="no PEM certificate in"):
            Signer.from_files(key=key, cert=key)

    def test_a_key_that_does_not_belong_to_the_certificate(
        self, ed25519: Identity, rsa2048: Identity, tmp_path: Path
    ) -> None:
        key, _ = ed25519.write(tmp_path, name="a")
        _, cert = rsa2048.write(tmp_path, name="b")
        with pytest.raises(KeyLoadError, match="does not belong to the certificate"):
            Signer.from_files(key=key, cert=cert)


class TestPermissions:
    @pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
    def test_a_key_file_other_users_can_read_warns(
        self, ed25519: Identity, tmp_path: Path, mode: int
    ) -> None:
        key, cert = ed25519.write(tmp_path)
        key.chmod(mode)
        with pytest.warns(InsecureKeyFileWarning, match=f"mode {mode:04o}.*chmod 600"):
            Signer.from_files(key=key, cert=cert)

    @pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
    @pytest.mark.parametrize("mode", [0o600, 0o400])
    def test_a_private_key_file_is_quiet(
        self, ed25519: Identity, tmp_path: Path, mode: int
    ) -> None:
        # Any warning would fail the test: pytest turns warnings into errors here.
        key, cert = ed25519.write(tmp_path)
        key.chmod(mode)
        Signer.from_files(key=key, cert=cert)


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestKeyTypes:
    @pytest.mark.parametrize(
        ("make_key", "message"),
        [
            (
                lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505  the weak key under test
                "1024-bit RSA key; at least 2048",
            ),
            (lambda: ec.generate_private_key(ec.SECP521R1()), "curve secp521r1"),
            (lambda: ec.generate_private_key(ec.SECP256K1()), "curve secp256k1"),
            (lambda: dsa.generate_private_key(key_size=2048), "DSAPrivateKey"),
            (lambda: ed448.Ed448PrivateKey.generate(), "Ed448PrivateKey"),
        ],
    )
    def test_unsupported_keys_are_named(
        self, ed25519: Identity, make_key: object, message: str
    ) -> None:
        key = make_key()  # type: ignore[operator]
        with pytest.raises(UnsupportedKeyError, match=message):
            Signer.from_pem(key=_pem(key), cert=ed25519.cert_pem)

    @pytest.mark.parametrize("digest", ["sha1", "md5", "sha224", "blake2b", ""])
    def test_weak_or_unknown_digests_are_refused(
        self, rsa2048: Identity, digest: str
    ) -> None:
        with pytest.raises(UnsupportedKeyError, match="unsupported digest"):
            rsa2048.signer(digest=digest)

    @pytest.mark.parametrize(
        ("spelling", "canonical"),
        [
            ("SHA256", "sha256"),
            ("sha-384", "sha384"),
            ("SHA3-256", "sha3_256"),
            ("sha3_512", "sha3_512"),
        ],
    )
    def test_digest_spellings(
        self, rsa2048: Identity, spelling: str, canonical: str
    ) -> None:
        assert rsa2048.signer(digest=spelling).digest == canonical
        assert canonical in DIGESTS

    def test_from_pem_accepts_text(self, ecdsa256: Identity) -> None:
        signer = Signer.from_pem(
            key=ecdsa256.key_pem.decode(), cert=ecdsa256.cert_pem.decode()
        )
        assert signer.algorithm == "ecdsa-sha256"

    def test_a_signer_built_from_objects(self, ed25519: Identity) -> None:
        signer = Signer(ed25519.key, ed25519.certificate.x509)
        assert signer.certificate == ed25519.certificate

    def test_a_signer_is_never_pickled(self, ed25519: Identity) -> None:
        with pytest.raises(TypeError, match="holds a private key"):
            pickle.dumps(ed25519.signer())

    def test_an_expired_signing_certificate_is_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        now = datetime.now(timezone.utc)
        old = make_identity(
            "ed25519",
            not_before=now - timedelta(days=2),
            not_after=now - timedelta(days=1),
        )
        with caplog.at_level(logging.WARNING, logger="signing"):
            signer = old.signer()
        assert "signing certificate CN=signing test expired at" in caplog.text
        # It still signs: the verifiers are the ones that refuse.
        assert signer.sign(b"{}", **JSON)
