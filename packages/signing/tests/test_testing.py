"""signing.testing: identities for users' tests and for the README example."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from signing import Signer
from signing.testing import Identity, make_identity


@pytest.mark.parametrize(
    ("kind", "options", "described"),
    [
        ("ed25519", {}, "ed25519"),
        ("ecdsa", {}, "ecdsa-P-256"),
        ("ecdsa", {"curve": "P-384"}, "ecdsa-P-384"),
        ("rsa", {"rsa_bits": 3072}, "rsa-3072"),
    ],
)
def test_each_kind(kind: str, options: dict[str, object], described: str) -> None:
    identity = make_identity(kind, common_name="unit", **options)  # type: ignore[arg-type]
    assert repr(identity) == f"<Identity {described} 'CN=unit'>"
    assert identity.certificate.subject == "CN=unit"


def test_bad_kind_or_curve() -> None:
    with pytest.raises(ValueError, match="kind must be"):
        make_identity("dsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curve must be"):
        make_identity("ecdsa", curve="P-521")


def test_validity_serial_and_issuer() -> None:
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    ca = make_identity("ecdsa", common_name="CA")
    leaf = make_identity(
        "ed25519",
        issuer=ca,
        serial=12,
        not_before=start,
        not_after=start + timedelta(days=2),
    )
    assert leaf.certificate.auth_id == "CA 12"
    assert leaf.certificate.not_valid_before == start
    assert leaf.certificate.not_valid_after == start + timedelta(days=2)


def test_a_renewed_certificate_for_the_same_key(ed25519: Identity) -> None:
    renewed = make_identity("ed25519", key=ed25519.key)
    assert renewed.certificate != ed25519.certificate
    assert renewed.signer().sign(b"", content_type="a/b", content_encoding="binary")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_write_makes_a_private_key_file(tmp_path: Path) -> None:
    identity = make_identity("ecdsa")
    key, cert = identity.write(tmp_path, name="worker", password="pw")
    assert (key.name, cert.name) == ("worker.key", "worker.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = Signer.from_files(key=key, cert=cert, password="pw")
    assert isinstance(signer.certificate.public_key, ec.EllipticCurvePublicKey)
