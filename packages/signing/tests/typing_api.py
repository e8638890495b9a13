"""Uses the public API as a user would; mypy checks it, pytest never runs it."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type

import signing
from msgwire import Registry, TaskMessage
from signing import (
    AuthCodec,
    Certificate,
    CertificateStore,
    InvalidSignatureError,
    SignatureError,
    SignedCodec,
    Signer,
    Verified,
    Verifier,
)
from signing.testing import Identity, make_identity

assert_type(signing.__version__, str)
assert_type(signing.COVERED_HEADERS, tuple[str, ...])
failure: SignatureError = InvalidSignatureError("mismatch")

identity = make_identity("ed25519", common_name="worker")
assert_type(identity, Identity)
key_file, cert_file = identity.write(Path("/tmp"), password="pw")  # noqa: S108
assert_type(key_file, Path)

signer = Signer.from_files(key=key_file, cert=cert_file, password="pw", digest="sha256")
signer = Signer.from_pem(key=identity.key_pem, cert=identity.cert_pem)
assert_type(signer.signer_id, str)
assert_type(signer.certificate, Certificate)
signed = signer.sign(b"[]", content_type="application/json", content_encoding="utf-8")
assert_type(signed, bytes)

store = CertificateStore.from_directory("trusted/", reload_interval=30.0)
store = CertificateStore([identity.cert_pem, identity.certificate])
store.reload()
verifier = Verifier(store, accept={"json"}, max_age=600.0, max_skew=5.0)
verified = verifier.verify(signed, headers={"task": "proj.add"})
assert_type(verified, Verified)
body, content_type, content_encoding = verifier.verify(signed)
assert_type(body, bytes)
assert_type(content_type, str)

rsa = make_identity("rsa")
auth_signed = rsa.signer().sign_auth(
    b"[]", content_type="application/json", content_encoding="utf-8"
)
assert_type(verifier.verify_auth(auth_signed, accept=["json"]), Verified)

registry = Registry(
    accept=["signed", "json"],
    codecs=[SignedCodec(signer=signer, verifier=verifier)],
)
registry.register(AuthCodec(signer=rsa.signer(), verifier=verifier, serializer="json"))
wire = TaskMessage.new("proj.add", (1, 2)).encode(
    registry=registry, serializer="signed"
)
message = TaskMessage.decode(
    wire.body, wire.headers, wire.properties, registry=registry
)
assert_type(message, TaskMessage)
