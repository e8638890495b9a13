from __future__ import annotations

import pickle

import pytest

import msgwire
import signing
from signing import errors

EXAMPLES = [
    errors.SigningError("base"),
    errors.KeyLoadError("bad password"),
    errors.UnsupportedKeyError("auth needs RSA"),
    errors.NotConfiguredError("no signer"),
    errors.EnvelopeError("bad header"),
    errors.SignatureError("rejected"),
    errors.MalformedSignedMessageError("no separator"),
    errors.InvalidSignatureError("mismatch"),
    errors.UntrustedSignerError("unknown signer"),
    errors.CertificateExpiredError("expired"),
    errors.ReplayError("too old"),
    errors.HeadersAlteredError("task changed"),
    errors.InnerContentDisallowedError(
        "application/x-python-serialize", frozenset({"application/json"})
    ),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert clone.args == exc.args
    assert isinstance(clone, signing.SigningError)


def test_every_public_exception_is_exported() -> None:
    for exc in EXAMPLES:
        assert getattr(signing, type(exc).__name__) is type(exc)
        assert type(exc).__name__ in errors.__all__


def test_every_verification_failure_is_a_signature_error() -> None:
    for cls in (
        errors.MalformedSignedMessageError,
        errors.InvalidSignatureError,
        errors.UntrustedSignerError,
        errors.CertificateExpiredError,
        errors.ReplayError,
        errors.HeadersAlteredError,
        errors.InnerContentDisallowedError,
    ):
        assert issubclass(cls, errors.SignatureError)


def test_failures_pass_through_msgwire_as_its_own_kinds() -> None:
    # msgwire re-raises its own errors unchanged and wraps any other exception.
    assert issubclass(errors.SignatureError, msgwire.DecodeError)
    assert issubclass(
        errors.InnerContentDisallowedError, msgwire.ContentDisallowedError
    )
    assert issubclass(errors.EnvelopeError, msgwire.EncodeError)
    assert issubclass(errors.NotConfiguredError, msgwire.MsgwireError)
    assert issubclass(errors.KeyLoadError, ValueError)


def test_the_inner_content_error_keeps_its_fields() -> None:
    exc = errors.InnerContentDisallowedError("application/x-yaml", ["application/json"])
    clone = pickle.loads(pickle.dumps(exc))
    assert clone.content_type == "application/x-yaml"
    assert clone.accept == frozenset({"application/json"})
    assert "inner content type 'application/x-yaml'" in str(clone)
    assert "(application/json)" in str(clone)


def test_the_key_file_warning_is_a_user_warning() -> None:
    assert issubclass(errors.InsecureKeyFileWarning, UserWarning)
