"""Celery's auth format: the exact layout, RSA only, and every refusal."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from signing_helpers import JSON, T0, Clock

from signing import (
    DIGESTS,
    AuthCodec,
    Certificate,
    CertificateExpiredError,
    CertificateStore,
    EnvelopeError,
    InnerContentDisallowedError,
    InvalidSignatureError,
    MalformedSignedMessageError,
    SignatureError,
    Signer,
    UnsupportedKeyError,
    UntrustedSignerError,
    Verified,
    Verifier,
)
from signing.testing import Identity, make_identity

SEP = b"\x00\x01"


def celery_fields(signed: bytes) -> list[bytes]:
    """Split an auth envelope the way Celery's SecureSerializer._unpack does."""
    return base64.b64decode(signed).split(SEP, 4)


def reencode(parts: list[bytes]) -> bytes:
    return base64.b64encode(SEP.join(parts))


class TestLayout:
    def test_the_five_fields_of_protocol_section_7(self, rsa2048: Identity) -> None:
        body = b'[[2, 3], {}, {"callbacks": null}]'
        signed = rsa2048.signer().sign_auth(body, **JSON)
        assert signed.isascii()
        signer, signature, ctype, cenc, inner = celery_fields(signed)
        assert base64.b64decode(signer).decode() == rsa2048.certificate.auth_id
        assert (ctype, cenc, inner) == (b"application/json", b"utf-8", body)
        # RSASSA-PSS, MGF1 over the same digest, maximum salt, over the body only.
        public = rsa2048.certificate.x509.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        digest = hashes.SHA256()
        public.verify(
            base64.b64decode(signature),
            body,
            padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH),
            digest,
        )

    def test_the_signer_id_is_issuer_values_then_the_serial(self) -> None:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Example CA"),
            ]
        )
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "worker")])
            )
            .issuer_name(issuer)
            .public_key(ca_key.public_key())
            .serial_number(4242)
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .sign(ca_key, hashes.SHA256())
        )
        assert Certificate(cert).auth_id == "FR Example Org Example CA 4242"

    def test_a_ca_issued_certificate_is_named_by_its_issuer(self) -> None:
        ca = make_identity("rsa", common_name="Team CA")
        worker = make_identity("rsa", common_name="worker-1", issuer=ca, serial=7)
        assert worker.certificate.auth_id == "Team CA 7"
        assert worker.signer().auth_id == "Team CA 7"

    def test_a_body_holding_the_separator_survives(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        body = b"x\x00\x01y\x00\x01\x00\x01z"
        signed = rsa2048.signer().sign_auth(body, **JSON)
        assert make_verifier().verify_auth(signed).body == body

    def test_text_input_is_read_too(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        signed = rsa2048.signer().sign_auth(b"{}", **JSON)
        assert make_verifier().verify_auth(signed.decode()).body == b"{}"


class TestRoundTrip:
    @pytest.mark.parametrize("digest", DIGESTS)
    def test_every_digest(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier], digest: str
    ) -> None:
        signed = rsa2048.signer(digest=digest).sign_auth(b"[1]", **JSON)
        assert make_verifier(digest=digest).verify_auth(signed) == Verified(
            b"[1]", "application/json", "utf-8"
        )

    @pytest.mark.parametrize("digest", ["sha256", "sha512"])
    def test_rsa_4096(self, rsa4096: Identity, clock: Clock, digest: str) -> None:
        verifier = Verifier(
            CertificateStore([rsa4096.cert_pem]), digest=digest, clock=clock
        )
        signed = rsa4096.signer(digest=digest).sign_auth(b"[1]", **JSON)
        assert verifier.verify_auth(signed).body == b"[1]"

    @given(body=st.binary(max_size=4096))
    def test_any_body(
        self, rsa2048: Identity, store: CertificateStore, body: bytes
    ) -> None:
        signed = rsa2048.signer().sign_auth(body, **JSON)
        assert Verifier(store).verify_auth(signed).body == body

    def test_a_different_digest_is_a_bad_signature(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        signed = rsa2048.signer(digest="sha512").sign_auth(b"{}", **JSON)
        with pytest.raises(InvalidSignatureError, match="digest other than sha256"):
            make_verifier(digest="sha256").verify_auth(signed)


class TestRefusals:
    def test_an_untrusted_signer_is_named(
        self, stranger: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        signed = stranger.signer().sign_auth(b"{}", **JSON)
        with pytest.raises(
            UntrustedSignerError, match=re.escape(stranger.certificate.auth_id)
        ):
            make_verifier().verify_auth(signed)

    def test_an_expired_certificate(self, clock: Clock) -> None:
        now = datetime.fromtimestamp(T0, timezone.utc)
        old = make_identity(
            "rsa",
            not_before=now - timedelta(days=9),
            not_after=now - timedelta(seconds=1),
        )
        verifier = Verifier(CertificateStore([old.cert_pem]), clock=clock)
        with pytest.raises(CertificateExpiredError, match="expired at"):
            verifier.verify_auth(old.signer().sign_auth(b"{}", **JSON))

    def test_a_certificate_not_yet_valid(self, clock: Clock) -> None:
        now = datetime.fromtimestamp(T0, timezone.utc)
        early = make_identity("rsa", not_before=now + timedelta(hours=1))
        verifier = Verifier(CertificateStore([early.cert_pem]), clock=clock)
        with pytest.raises(CertificateExpiredError, match="not valid before"):
            verifier.verify_auth(early.signer().sign_auth(b"{}", **JSON))

    def test_a_forged_signature(
        self,
        rsa2048: Identity,
        stranger: Identity,
        make_verifier: Callable[..., Verifier],
    ) -> None:
        # The trusted signer's id, with a signature by another key.
        parts = celery_fields(stranger.signer().sign_auth(b"{}", **JSON))
        parts[0] = base64.b64encode(rsa2048.certificate.auth_id.encode())
        with pytest.raises(InvalidSignatureError, match="bad signature"):
            make_verifier().verify_auth(reencode(parts))

    def test_a_changed_body(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        parts = celery_fields(rsa2048.signer().sign_auth(b'{"a": 1}', **JSON))
        parts[4] = b'{"a": 2}'
        with pytest.raises(InvalidSignatureError):
            make_verifier().verify_auth(reencode(parts))

    def test_pickle_from_a_trusted_signer_is_refused(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        signed = rsa2048.signer().sign_auth(
            b"\x80\x05N.",
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
        with pytest.raises(InnerContentDisallowedError, match="x-python-serialize"):
            make_verifier().verify_auth(signed)

    def test_a_swapped_content_type_is_checked_against_accept(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        # The content type is not signed in this format; the accept list still holds.
        parts = celery_fields(rsa2048.signer().sign_auth(b"{}", **JSON))
        parts[2] = b"application/x-python-serialize"
        with pytest.raises(InnerContentDisallowedError):
            make_verifier().verify_auth(reencode(parts))

    def test_an_unknown_content_encoding_is_malformed(
        self, rsa2048: Identity, make_verifier: Callable[..., Verifier]
    ) -> None:
        parts = celery_fields(rsa2048.signer().sign_auth(b"{}", **JSON))
        parts[3] = b"utf-9"
        with pytest.raises(
            MalformedSignedMessageError, match="neither utf-8 nor binary"
        ):
            make_verifier().verify_auth(reencode(parts))

    def test_a_certificate_with_another_key_type_under_the_same_id(
        self, rsa2048: Identity, clock: Clock
    ) -> None:
        serial = rsa2048.certificate.x509.serial_number
        twin = make_identity("ecdsa", common_name="rsa2048", serial=serial)
        assert twin.certificate.auth_id == rsa2048.certificate.auth_id
        verifier = Verifier(CertificateStore([twin.cert_pem]), clock=clock)
        with pytest.raises(InvalidSignatureError, match="signed with RSA"):
            verifier.verify_auth(rsa2048.signer().sign_auth(b"{}", **JSON))

    def test_certificates_sharing_an_id_are_each_tried(
        self, clock: Clock, caplog: pytest.LogCaptureFixture
    ) -> None:
        old = make_identity("rsa", common_name="reissued", serial=99)
        new = make_identity("rsa", common_name="reissued", serial=99)
        with caplog.at_level(logging.WARNING, logger="signing"):
            verifier = Verifier(
                CertificateStore([old.cert_pem, new.cert_pem]), clock=clock
            )
        assert "share the auth signer id 'reissued 99'" in caplog.text
        for identity in (old, new):
            assert (
                verifier.verify_auth(identity.signer().sign_auth(b"{}", **JSON)).body
                == b"{}"
            )

    def test_only_rsa_keys_sign_auth(
        self, ed25519: Identity, ecdsa256: Identity
    ) -> None:
        for identity in (ed25519, ecdsa256):
            with pytest.raises(UnsupportedKeyError, match="needs an RSA key"):
                identity.signer().sign_auth(b"{}", **JSON)
            with pytest.raises(UnsupportedKeyError, match="use SignedCodec"):
                AuthCodec(signer=identity.signer())

    def test_only_encodings_kombu_writes_are_signed(self, rsa2048: Identity) -> None:
        with pytest.raises(EnvelopeError, match="utf-8"):
            rsa2048.signer().sign_auth(
                b"{}", content_type="text/plain", content_encoding="latin-1"
            )


@pytest.fixture(scope="module")
def signed(rsa2048: Identity) -> bytes:
    """One auth envelope, the same for every example of a property test."""
    return rsa2048.signer().sign_auth(b'{"a": 1}', **JSON)


class TestMalformed:
    def test_every_truncation_is_refused(
        self, signed: bytes, make_verifier: Callable[..., Verifier]
    ) -> None:
        verifier = make_verifier()
        for end in range(len(signed)):
            with pytest.raises(SignatureError):
                verifier.verify_auth(signed[:end])

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda s: s + b"\n", "not base64"),
            (lambda s: s[:-1], "not base64"),
            (lambda s: s[:-4] + b"====", "not base64"),
            (lambda s: b"", "empty"),
            (lambda s: "ünïcode", "not ASCII"),
            (lambda s: base64.b64encode(b"no separators"), "found 1"),
        ],
    )
    def test_broken_envelopes_say_what_is_wrong(
        self,
        signed: bytes,
        make_verifier: Callable[..., Verifier],
        mutate: Callable[[bytes], bytes],
        message: str,
    ) -> None:
        with pytest.raises(MalformedSignedMessageError, match=message):
            make_verifier().verify_auth(mutate(signed))

    def test_non_canonical_base64_is_refused(
        self, make_verifier: Callable[..., Verifier]
    ) -> None:
        # "QR==" decodes to the same byte as "QQ==" in lenient decoders.
        assert base64.b64decode(b"QR==") == base64.b64decode(b"QQ==")
        with pytest.raises(MalformedSignedMessageError, match="canonical"):
            make_verifier().verify_auth(b"QR==")

    def test_a_signer_id_that_is_not_text(
        self, signed: bytes, make_verifier: Callable[..., Verifier]
    ) -> None:
        parts = celery_fields(signed)
        parts[0] = base64.b64encode(b"\xff\xfe")
        with pytest.raises(MalformedSignedMessageError, match="not UTF-8"):
            make_verifier().verify_auth(reencode(parts))

    @given(data=st.data())
    def test_any_single_byte_change_is_refused(
        self, signed: bytes, store: CertificateStore, data: st.DataObject
    ) -> None:
        index = data.draw(st.integers(0, len(signed) - 1), label="index")
        byte = data.draw(
            st.integers(0, 255).filter(lambda b: b != signed[index]), label="byte"
        )
        with pytest.raises(SignatureError):
            Verifier(store).verify_auth(
                signed[:index] + bytes([byte]) + signed[index + 1 :]
            )

    @given(data=st.data())
    def test_any_byte_change_inside_the_decoded_fields_is_refused(
        self, signed: bytes, store: CertificateStore, data: st.DataObject
    ) -> None:
        raw = base64.b64decode(signed)
        index = data.draw(st.integers(0, len(raw) - 1), label="index")
        byte = data.draw(
            st.integers(0, 255).filter(lambda b: b != raw[index]), label="byte"
        )
        tampered = base64.b64encode(raw[:index] + bytes([byte]) + raw[index + 1 :])
        with pytest.raises(SignatureError):
            Verifier(store).verify_auth(tampered)

    @given(signature=st.binary(min_size=1, max_size=1100))
    def test_any_other_signature_bytes_are_a_bad_signature(
        self, signed: bytes, store: CertificateStore, signature: bytes
    ) -> None:
        fields = celery_fields(signed)
        fields[1] = base64.b64encode(signature)
        with pytest.raises(InvalidSignatureError):
            Verifier(store).verify_auth(reencode(fields))

    @given(garbage=st.binary(max_size=800) | st.text(max_size=400))
    def test_garbage_is_refused(
        self, store: CertificateStore, garbage: bytes | str
    ) -> None:
        with pytest.raises(SignatureError):
            Verifier(store).verify_auth(garbage)

    @given(fields=st.lists(st.binary(max_size=60), min_size=5, max_size=5))
    def test_garbage_fields_in_a_valid_frame_are_refused(
        self, store: CertificateStore, fields: list[bytes]
    ) -> None:
        with pytest.raises(SignatureError):
            Verifier(store).verify_auth(reencode(fields))


def test_signer_ids_round_trip_through_the_store(rsa2048: Identity) -> None:
    signer = Signer.from_pem(key=rsa2048.key_pem, cert=rsa2048.cert_pem)
    assert rsa2048.certificate.auth_id in CertificateStore([rsa2048.cert_pem])
    assert signer.auth_id == rsa2048.certificate.auth_id
