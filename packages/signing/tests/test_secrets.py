"""No private key material or password reaches a log record, a repr or an error."""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from signing_helpers import JSON, T0, Clock

from signing import (
    AuthCodec,
    CertificateStore,
    SignedCodec,
    Signer,
    SigningError,
    Verifier,
)
from signing.testing import Identity, make_identity

PASSWORD = "s3cret-Passw0rd-that-must-never-leak"


def secrets_of(identity: Identity) -> list[str]:
    """Every text form of the private key that could leak."""
    key = identity.key
    found: list[str] = [PASSWORD, "PRIVATE KEY"]
    pem_lines = identity.key_pem.decode().splitlines()[1:-1]
    found += [line for line in pem_lines if len(line) >= 16]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        for value in (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1):
            found += [str(value), f"{value:x}"]
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        found += [str(value), f"{value:x}"]
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        found += [raw.hex(), base64.b64encode(raw).decode()]
    return found


def texts_of(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize("kind", ["rsa", "ecdsa", "ed25519"])
def test_no_secret_in_logs_reprs_or_errors(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    now = datetime.fromtimestamp(T0, timezone.utc)
    identity = make_identity(kind)  # type: ignore[arg-type]
    expired = make_identity(
        kind,  # type: ignore[arg-type]
        key=identity.key,
        not_before=now - timedelta(days=3),
        not_after=now - timedelta(days=1),
    )
    other = make_identity("ed25519")
    key_file, cert_file = identity.write(tmp_path, password=PASSWORD)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "expired.pem").write_bytes(expired.cert_pem)
    produced: list[str] = []

    def attempt(action: Callable[[], object]) -> None:
        try:
            result = action()
        except (SigningError, TypeError) as exc:
            produced.extend(texts_of(exc))
        else:
            produced.append(repr(result))

    with caplog.at_level(logging.DEBUG):
        signer = Signer.from_files(
            key=key_file, cert=cert_file, password=PASSWORD, clock=clock
        )
        attempt(
            lambda: Signer.from_files(key=key_file, cert=cert_file, password="wrong")
        )
        attempt(lambda: Signer.from_files(key=key_file, cert=cert_file))
        attempt(
            lambda: Signer.from_pem(
                key=identity.key_pem, cert=cert_file.read_bytes(), password=PASSWORD
            )
        )
        attempt(lambda: Signer.from_pem(key=identity.key_pem, cert=other.cert_pem))
        attempt(lambda: pickle.dumps(signer))
        store = CertificateStore.from_directory(tmp_path / "store", reload_interval=0)
        verifier = Verifier(store, clock=clock)
        signed = signer.sign(b"{}", headers={"task": "t", "id": "i"}, **JSON)
        attempt(lambda: verifier.verify(signed))  # expired certificate
        store.replace([identity.cert_pem])
        attempt(lambda: verifier.verify(signed, headers={"task": "u", "id": "i"}))
        attempt(lambda: verifier.verify(signed[:-1] + bytes([signed[-1] ^ 1])))
        attempt(lambda: verifier.verify(signed[:20]))
        attempt(lambda: Verifier(CertificateStore([other.cert_pem])).verify(signed))
        attempt(lambda: Verifier(store, clock=lambda: T0 + 10**6).verify(signed))
        attempt(lambda: signer.sign(b"{}", content_type="\x00", content_encoding="x"))
        codec: AuthCodec | SignedCodec
        if kind == "rsa":
            auth = signer.sign_auth(b"{}", **JSON)
            attempt(lambda: verifier.verify_auth(auth))
            attempt(lambda: verifier.verify_auth(auth[:-8] + b"AAAAAAAA"))
            codec = AuthCodec(signer=signer, verifier=verifier)
        else:
            attempt(lambda: signer.sign_auth(b"{}", **JSON))
            attempt(lambda: AuthCodec(signer=signer))
            codec = SignedCodec(signer=signer, verifier=verifier)
        attempt(lambda: codec.loads(codec.dumps({"a": 1})))
        produced += [
            repr(signer),
            repr(verifier),
            repr(store),
            repr(codec),
            repr(identity),
        ]
        produced += [repr(cert) for cert in store]

    produced += [record.getMessage() for record in caplog.records]
    everything = "\n".join(produced)
    assert "expired at" in everything  # the attempts really failed as intended
    for secret in secrets_of(identity):
        assert secret not in everything
