"""The native format: layout, key types, covered headers, replay window, tampering."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from signing_helpers import JSON, T0, Clock

from signing import (
    COVERED_HEADERS,
    DIGESTS,
    CertificateExpiredError,
    CertificateStore,
    EnvelopeError,
    HeadersAlteredError,
    InnerContentDisallowedError,
    InvalidSignatureError,
    MalformedSignedMessageError,
    ReplayError,
    SignatureError,
    UntrustedSignerError,
    Verified,
    Verifier,
)
from signing._native import pack_signed_part
from signing.testing import Identity, make_identity

HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "proj.add",
    "id": "fbbe5382-fd5c-4189-83dc-110a35fc8981",
    "eta": None,
    "expires": "2030-01-01T00:02:00+00:00",
    "retries": 2,
    "timelimit": [60, 50.5],
    "argsrepr": "(1, 1)",
}


def fields(envelope: bytes) -> list[bytes]:
    """Split an envelope into its eight fields, checking the framing on the way."""
    assert envelope[:5] == b"\x89QMS\x01"
    offset, found = 5, []
    while offset < len(envelope):
        (size,) = struct.unpack_from(">I", envelope, offset)
        found.append(envelope[offset + 4 : offset + 4 + size])
        offset += 4 + size
    assert offset == len(envelope)
    assert len(found) == 8
    return found


def verify_with_cryptography(
    identity: Identity, signature: bytes, data: bytes, alg: str
) -> None:
    """Check a signature with cryptography directly, as another implementation would."""
    public = identity.certificate.x509.public_key()
    if alg == "ed25519":
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)
        return
    digest = getattr(hashes, alg.rsplit("-", 1)[1].upper())()
    if isinstance(public, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH)
        public.verify(signature, data, pss, digest)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(digest))


class TestLayout:
    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ecdsa384", "ed25519"])
    def test_every_field_is_where_the_readme_says(
        self, identities: dict[str, Identity], clock: Clock, name: str
    ) -> None:
        identity = identities[name]
        clock.now = T0 + 0.123456
        signed = identity.signer(clock=clock).sign(
            b"[[1], {}, null]", headers=HEADERS, **JSON
        )
        alg, signer_id, signed_at, ctype, cenc, headers, body, signature = fields(
            signed
        )
        expected_alg = {
            "rsa2048": b"rsa-pss-sha256",
            "ecdsa256": b"ecdsa-sha256",
            "ecdsa384": b"ecdsa-sha256",
            "ed25519": b"ed25519",
        }[name]
        assert alg == expected_alg
        assert signer_id == identity.certificate.x509.fingerprint(hashes.SHA256())
        assert struct.unpack(">q", signed_at)[0] == int(T0) * 1_000_000 + 123456
        assert (ctype, cenc, body) == (
            b"application/json",
            b"utf-8",
            b"[[1], {}, null]",
        )
        assert headers == (
            b'{"eta":null,"expires":"2030-01-01T00:02:00+00:00",'
            b'"id":"fbbe5382-fd5c-4189-83dc-110a35fc8981","retries":2,'
            b'"task":"proj.add","timelimit":[60,50.5]}'
        )
        # The signature covers every byte before its own length prefix.
        covered = signed[: len(signed) - len(signature) - 4]
        verify_with_cryptography(identity, signature, covered, alg.decode())

    def test_no_headers_leaves_the_header_field_empty(self, ed25519: Identity) -> None:
        signed = ed25519.signer().sign(b"{}", **JSON)
        assert fields(signed)[5] == b""

    def test_the_digest_is_named_in_the_algorithm(self, rsa2048: Identity) -> None:
        signed = rsa2048.signer(digest="sha3_384").sign(b"{}", **JSON)
        assert fields(signed)[0] == b"rsa-pss-sha3_384"

    def test_canonical_headers_treat_missing_and_default_alike(
        self, ed25519: Identity
    ) -> None:
        signer = ed25519.signer(clock=Clock())
        sparse = signer.sign(b"{}", headers={"task": "t", "id": "i"}, **JSON)
        full = signer.sign(
            b"{}",
            headers={"task": "t", "id": "i", "retries": 0, "timelimit": [None, None]},
            **JSON,
        )
        assert fields(sparse)[5] == fields(full)[5]
        assert json.loads(fields(sparse)[5]) == {
            "task": "t",
            "id": "i",
            "eta": None,
            "expires": None,
            "retries": 0,
            "timelimit": [None, None],
        }


class TestRoundTrip:
    @pytest.mark.parametrize("digest", DIGESTS)
    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ecdsa384", "ed25519"])
    def test_every_key_type_and_digest(
        self,
        identities: dict[str, Identity],
        make_verifier: Callable[..., Verifier],
        clock: Clock,
        name: str,
        digest: str,
    ) -> None:
        signer = identities[name].signer(digest=digest, clock=clock)
        signed = signer.sign(b'{"x": 1}', headers=HEADERS, **JSON)
        assert make_verifier().verify(signed, headers=HEADERS) == Verified(
            b'{"x": 1}', "application/json", "utf-8"
        )

    def test_rsa_4096(self, rsa4096: Identity, clock: Clock) -> None:
        verifier = Verifier(CertificateStore([rsa4096.cert_pem]), clock=clock)
        signed = rsa4096.signer(clock=clock, digest="sha512").sign(b"[]", **JSON)
        assert verifier.verify(signed).body == b"[]"

    @given(
        body=st.binary(max_size=2048),
        headers=st.fixed_dictionaries(
            {
                "task": st.text(min_size=1, max_size=40),
                "id": st.uuids().map(str),
                "eta": st.none() | st.datetimes(timezones=st.just(timezone.utc)),
                "retries": st.integers(min_value=0, max_value=2**40),
                "timelimit": st.none()
                | st.tuples(
                    st.none() | st.floats(0, 1e6) | st.integers(0, 10**6),
                    st.none() | st.floats(0, 1e6) | st.integers(0, 10**6),
                ),
            }
        ),
    )
    def test_any_body_and_headers_round_trip(
        self, identities: dict[str, Identity], body: bytes, headers: dict[str, Any]
    ) -> None:
        clock = Clock()
        verifier = Verifier(
            CertificateStore([i.cert_pem for i in identities.values()]),
            clock=clock,
            max_age=None,
        )
        for identity in identities.values():
            signed = identity.signer(clock=clock).sign(body, headers=headers, **JSON)
            assert verifier.verify(signed, headers=headers).body == body


class TestCoveredHeaders:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("task", "proj.delete_everything"),
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("eta", "2030-01-01T00:00:30+00:00"),
            ("expires", None),
            ("retries", 3),
            ("timelimit", [None, 50.5]),
        ],
    )
    def test_a_changed_header_is_refused_by_name(
        self,
        make_verifier: Callable[..., Verifier],
        ed25519: Identity,
        clock: Clock,
        name: str,
        value: Any,
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        with pytest.raises(HeadersAlteredError, match=f"header '{name}' was changed"):
            make_verifier().verify(signed, headers={**HEADERS, name: value})

    def test_a_removed_header_is_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        altered = {k: v for k, v in HEADERS.items() if k != "task"}
        with pytest.raises(HeadersAlteredError, match="'task'"):
            make_verifier().verify(signed, headers=altered)

    def test_a_header_of_another_type_is_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        with pytest.raises(HeadersAlteredError, match="'retries'"):
            make_verifier().verify(signed, headers={**HEADERS, "retries": "2"})

    def test_uncovered_headers_may_change(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        changed = {**HEADERS, "argsrepr": "(2, 2)", "compression": "application/x-gzip"}
        assert make_verifier().verify(signed, headers=changed).body == b"{}"

    def test_equal_values_in_other_forms_are_the_same(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        eta = datetime(2030, 1, 1, tzinfo=timezone.utc)
        signed = ed25519.signer(clock=clock).sign(
            b"{}", headers={**HEADERS, "eta": eta, "timelimit": (60.0, 50.5)}, **JSON
        )
        received = {**HEADERS, "eta": eta.isoformat(), "timelimit": [60, 50.5]}
        assert make_verifier().verify(signed, headers=received).body == b"{}"

    def test_task_headers_with_a_signature_covering_none_are_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", **JSON)
        with pytest.raises(HeadersAlteredError, match="covers none"):
            make_verifier().verify(signed, headers=HEADERS)
        # Headers that are not a task message's are not required to be covered.
        assert make_verifier().verify(signed, headers={"x": 1}).body == b"{}"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("task", 5),
            ("eta", 1.5),
            ("retries", -1),
            ("retries", True),
            ("timelimit", [1]),
            ("timelimit", [float("nan"), None]),
            ("timelimit", ["1", None]),
        ],
    )
    def test_unsignable_header_values_are_refused_when_signing(
        self, ed25519: Identity, name: str, value: Any
    ) -> None:
        with pytest.raises(EnvelopeError, match=f"cannot sign header '{name}'"):
            ed25519.signer().sign(b"{}", headers={**HEADERS, name: value}, **JSON)

    @given(
        name=st.sampled_from(COVERED_HEADERS),
        value=st.none()
        | st.text(max_size=20)
        | st.integers(min_value=0)
        | st.lists(st.none() | st.integers(0, 100), min_size=2, max_size=2),
    )
    def test_any_change_to_a_covered_header_is_detected(
        self, ed25519: Identity, name: str, value: Any
    ) -> None:
        clock = Clock()
        verifier = Verifier(CertificateStore([ed25519.cert_pem]), clock=clock)
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        original = HEADERS.get(name)
        changed = {**HEADERS, name: value}
        same = value == original or (name == "timelimit" and value == [60, 50.5])
        if same:
            assert verifier.verify(signed, headers=changed).body == b"{}"
        else:
            with pytest.raises(HeadersAlteredError):
                verifier.verify(signed, headers=changed)


class TestReplayWindow:
    def test_a_message_older_than_max_age_is_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=HEADERS, **JSON)
        verifier = make_verifier(max_age=300.0)
        clock.now = T0 + 300
        assert verifier.verify(signed, headers=HEADERS).body == b"{}"
        clock.now = T0 + 301
        with pytest.raises(ReplayError, match=r"301 s old.*max_age 300.0 s"):
            verifier.verify(signed, headers=HEADERS)

    def test_a_message_from_the_future_beyond_max_skew_is_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=lambda: T0 + 61).sign(b"{}", **JSON)
        with pytest.raises(ReplayError, match="in the future"):
            make_verifier(max_skew=60.0).verify(signed)
        assert make_verifier(max_skew=61.5).verify(signed).body == b"{}"

    def test_max_age_none_turns_the_age_check_off(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(b"{}", **JSON)
        clock.now = T0 + 86400 * 30
        assert make_verifier(max_age=None).verify(signed).body == b"{}"

    def test_a_delayed_task_is_counted_from_its_eta(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        eta = datetime.fromtimestamp(T0, timezone.utc) + timedelta(hours=2)
        headers = {**HEADERS, "eta": eta.isoformat()}
        signed = ed25519.signer(clock=clock).sign(b"{}", headers=headers, **JSON)
        verifier = make_verifier(max_age=600.0)
        clock.now = T0 + 7200 + 600
        assert verifier.verify(signed, headers=headers).body == b"{}"
        clock.now = T0 + 7200 + 601
        with pytest.raises(ReplayError):
            verifier.verify(signed, headers=headers)

    @pytest.mark.parametrize(
        "options",
        [
            {"max_age": 0},
            {"max_age": -1.0},
            {"max_skew": -1},
            {"max_age": float("inf")},
        ],
    )
    def test_bad_window_options_are_refused(
        self, store: CertificateStore, options: dict[str, float]
    ) -> None:
        with pytest.raises(ValueError, match="max_"):
            Verifier(store, **options)  # type: ignore[arg-type]


class TestRefusals:
    def test_an_untrusted_signer(
        self, make_verifier: Callable[..., Verifier], stranger: Identity, clock: Clock
    ) -> None:
        signed = stranger.signer(clock=clock).sign(b"{}", **JSON)
        with pytest.raises(UntrustedSignerError, match=stranger.certificate.signer_id):
            make_verifier().verify(signed)

    def test_an_expired_certificate_names_the_date(self, clock: Clock) -> None:
        now = datetime.fromtimestamp(T0, timezone.utc)
        old = make_identity(
            "ed25519",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        )
        verifier = Verifier(CertificateStore([old.cert_pem]), clock=clock)
        signed = old.signer(clock=clock).sign(b"{}", **JSON)
        expected = (now - timedelta(days=1)).isoformat(timespec="seconds")
        with pytest.raises(
            CertificateExpiredError, match=re.escape(f"expired at {expected}")
        ):
            verifier.verify(signed)

    def test_a_certificate_not_yet_valid_names_the_date(self, clock: Clock) -> None:
        now = datetime.fromtimestamp(T0, timezone.utc)
        early = make_identity("ed25519", not_before=now + timedelta(days=1))
        verifier = Verifier(CertificateStore([early.cert_pem]), clock=clock)
        signed = early.signer(clock=clock).sign(b"{}", **JSON)
        with pytest.raises(CertificateExpiredError, match="is not valid before"):
            verifier.verify(signed)

    def test_a_signature_by_another_key(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        # The trusted certificate's id with a signature made by another key.
        impostor = make_identity("ed25519")
        part = pack_signed_part(
            b"ed25519",
            ed25519.certificate.fingerprint,
            int(T0 * 1e6),
            b"application/json",
            b"utf-8",
            b"",
            b"{}",
        )
        assert isinstance(impostor.key, Ed25519PrivateKey)
        signature = impostor.key.sign(part)
        forged = part + struct.pack(">I", len(signature)) + signature
        with pytest.raises(InvalidSignatureError, match="bad signature from signer"):
            make_verifier().verify(forged)

    def test_an_algorithm_that_does_not_fit_the_certificate(
        self, make_verifier: Callable[..., Verifier], rsa2048: Identity
    ) -> None:
        part = pack_signed_part(
            b"ecdsa-sha256",
            rsa2048.certificate.fingerprint,
            int(T0 * 1e6),
            b"application/json",
            b"utf-8",
            b"",
            b"{}",
        )
        forged = part + struct.pack(">I", 3) + b"sig"
        with pytest.raises(InvalidSignatureError, match="holds a rsa key"):
            make_verifier().verify(forged)

    def test_an_inner_content_type_not_accepted(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(
            b"\x80\x05N.",
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
        with pytest.raises(InnerContentDisallowedError, match="x-python-serialize"):
            make_verifier().verify(signed)
        verifier = make_verifier(accept=["json", "pickle"])
        assert verifier.verify(signed).content_type == "application/x-python-serialize"
        # A call may name its own list instead of the verifier's.
        assert make_verifier().verify(signed, accept=["pickle"]).body == b"\x80\x05N."
        with pytest.raises(InnerContentDisallowedError):
            verifier.verify(signed, accept=["application/json"])

    def test_the_content_type_must_match_exactly(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        signed = ed25519.signer(clock=clock).sign(
            b"{}", content_type="Application/JSON", content_encoding="utf-8"
        )
        with pytest.raises(InnerContentDisallowedError):
            make_verifier().verify(signed)

    def test_a_nested_envelope_is_refused(
        self, make_verifier: Callable[..., Verifier], ed25519: Identity, clock: Clock
    ) -> None:
        inner = ed25519.signer(clock=clock).sign(b"{}", **JSON)
        outer = ed25519.signer(clock=clock).sign(
            inner,
            content_type="application/x-queue-meta-signed",
            content_encoding="binary",
        )
        verifier = make_verifier(accept=["json", "application/x-queue-meta-signed"])
        with pytest.raises(MalformedSignedMessageError, match="nesting"):
            verifier.verify(outer)

    @pytest.mark.parametrize(
        ("content_type", "content_encoding"),
        [
            ("", "utf-8"),
            ("application/json", ""),
            ("application/jsön", "utf-8"),
            ("a\nb", "utf-8"),
            ("x" * 256, "utf-8"),
        ],
    )
    def test_unsendable_content_types_are_refused_when_signing(
        self, ed25519: Identity, content_type: str, content_encoding: str
    ) -> None:
        with pytest.raises(EnvelopeError, match="printable ASCII"):
            ed25519.signer().sign(
                b"{}", content_type=content_type, content_encoding=content_encoding
            )


@pytest.fixture(scope="module")
def signed_once(identities: dict[str, Identity]) -> dict[str, bytes]:
    """One envelope per key, the same for every example of a property test.

    ECDSA signatures vary in length, so signing inside the test would change
    the range hypothesis draws an index from.
    """
    return {
        name: identity.signer(clock=Clock()).sign(b'{"a": 1}', headers=HEADERS, **JSON)
        for name, identity in identities.items()
    }


class TestMalformed:
    @pytest.fixture
    def signed(self, ed25519: Identity, clock: Clock) -> bytes:
        return ed25519.signer(clock=clock).sign(b'{"a": 1}', headers=HEADERS, **JSON)

    def test_every_truncation_is_malformed(
        self, make_verifier: Callable[..., Verifier], signed: bytes
    ) -> None:
        verifier = make_verifier()
        for end in range(len(signed)):
            with pytest.raises(MalformedSignedMessageError):
                verifier.verify(signed[:end], headers=HEADERS)

    def test_trailing_bytes_are_malformed(
        self, make_verifier: Callable[..., Verifier], signed: bytes
    ) -> None:
        with pytest.raises(MalformedSignedMessageError, match="follow the signature"):
            make_verifier().verify(signed + b"\x00")

    def test_an_unknown_version_is_named(
        self, make_verifier: Callable[..., Verifier], signed: bytes
    ) -> None:
        with pytest.raises(
            MalformedSignedMessageError, match="version 2 is not supported"
        ):
            make_verifier().verify(signed[:4] + b"\x02" + signed[5:])

    def test_an_auth_envelope_is_not_a_native_one(
        self, make_verifier: Callable[..., Verifier], rsa2048: Identity
    ) -> None:
        auth = rsa2048.signer().sign_auth(b"{}", **JSON)
        with pytest.raises(MalformedSignedMessageError, match="magic"):
            make_verifier().verify(auth)

    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ed25519"])
    @given(data=st.data())
    def test_any_single_byte_change_is_refused(
        self,
        identities: dict[str, Identity],
        signed_once: dict[str, bytes],
        name: str,
        data: st.DataObject,
    ) -> None:
        identity = identities[name]
        verifier = Verifier(CertificateStore([identity.cert_pem]), clock=Clock())
        signed = signed_once[name]
        index = data.draw(st.integers(0, len(signed) - 1), label="index")
        byte = data.draw(
            st.integers(0, 255).filter(lambda b: b != signed[index]), label="byte"
        )
        tampered = signed[:index] + bytes([byte]) + signed[index + 1 :]
        with pytest.raises(SignatureError):
            verifier.verify(tampered, headers=HEADERS)

    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ecdsa384", "ed25519"])
    @given(signature=st.binary(min_size=1, max_size=1100))
    def test_any_other_signature_bytes_are_a_bad_signature(
        self, identities: dict[str, Identity], name: str, signature: bytes
    ) -> None:
        """Whatever cryptography makes of the bytes, the answer is a bad signature."""
        identity = identities[name]
        signer = identity.signer(clock=Clock())
        part = pack_signed_part(
            signer.algorithm.encode(),
            identity.certificate.fingerprint,
            int(T0 * 1e6),
            b"application/json",
            b"utf-8",
            b"",
            b"{}",
        )
        forged = part + struct.pack(">I", len(signature)) + signature
        verifier = Verifier(CertificateStore([identity.cert_pem]), clock=Clock())
        with pytest.raises(InvalidSignatureError):
            verifier.verify(forged)

    @given(garbage=st.binary(max_size=600))
    def test_garbage_is_refused_with_a_signature_error(
        self, store: CertificateStore, garbage: bytes
    ) -> None:
        with pytest.raises(SignatureError):
            Verifier(store).verify(garbage, headers=HEADERS)

    @given(tail=st.binary(max_size=400))
    def test_garbage_after_a_valid_prefix_is_refused(
        self, store: CertificateStore, tail: bytes
    ) -> None:
        with pytest.raises(SignatureError):
            Verifier(store).verify(b"\x89QMS\x01" + tail)

    def test_a_non_bytes_envelope_is_malformed(
        self, make_verifier: Callable[..., Verifier]
    ) -> None:
        with pytest.raises(MalformedSignedMessageError, match="expected bytes"):
            make_verifier().verify("text")  # type: ignore[arg-type]
