from __future__ import annotations

import pickle

import pytest

import signing
from signing import errors

EXAMPLES = [
    errors.SigningError("base"),
    errors.KeyLoadError("bad password"),
    errors.UnsupportedKeyError("auth needs RSA"),
    errors.SignatureError("rejected"),
    errors.MalformedSignedMessageError("no separator"),
    errors.InvalidSignatureError("mismatch"),
    errors.UntrustedSignerError("unknown signer"),
    errors.CertificateExpiredError("expired"),
    errors.ReplayError("too old"),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert isinstance(clone, signing.SigningError)


def test_every_verification_failure_is_a_signature_error() -> None:
    for cls in (
        errors.MalformedSignedMessageError,
        errors.InvalidSignatureError,
        errors.UntrustedSignerError,
        errors.CertificateExpiredError,
        errors.ReplayError,
    ):
        assert issubclass(cls, errors.SignatureError)
