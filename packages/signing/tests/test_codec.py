"""The msgwire codecs: task messages, headers, accept lists, configuration."""

from __future__ import annotations

import importlib.metadata
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from signing_helpers import T0, Clock

import msgwire
from msgwire import (
    ContentDisallowedError,
    DecodeError,
    RawCodec,
    Registry,
    TaskMessage,
    TimeLimit,
)
from signing import (
    AuthCodec,
    CertificateStore,
    HeadersAlteredError,
    InnerContentDisallowedError,
    NotConfiguredError,
    ReplayError,
    SignatureError,
    SignedCodec,
    UntrustedSignerError,
    Verifier,
)
from signing.testing import Identity, make_identity

SENT_AT = datetime.fromtimestamp(T0, timezone.utc)


def app_registry(
    codec_type: type[AuthCodec | SignedCodec],
    identity: Identity,
    trusted: list[Identity],
    clock: Clock,
    *,
    accept: tuple[str, ...] = ("json",),
    registry_accept: tuple[str, ...] | None = None,
    serializer: str = "json",
) -> Registry:
    """One application's registry: its own key, its own trusted certificates."""
    codec = codec_type(
        signer=identity.signer(clock=clock),
        verifier=Verifier(
            CertificateStore([t.cert_pem for t in trusted]), accept=accept, clock=clock
        ),
        serializer=serializer,
    )
    return Registry(accept=registry_accept or (codec.name, "json"), codecs=[codec])


def message(**options: Any) -> TaskMessage:
    return TaskMessage.new(
        "proj.add",
        (2, 3),
        {"z": 1},
        eta=SENT_AT + timedelta(seconds=30),
        expires=SENT_AT + timedelta(minutes=5),
        retries=1,
        timelimit=TimeLimit(60, 50),
        **options,
    )


class TestTaskMessages:
    @pytest.mark.parametrize("name", ["rsa2048", "ecdsa256", "ecdsa384", "ed25519"])
    def test_signed_round_trip(
        self, identities: dict[str, Identity], clock: Clock, name: str
    ) -> None:
        identity = identities[name]
        registry = app_registry(SignedCodec, identity, [identity], clock)
        wire = message().encode(registry=registry, serializer="signed")
        assert wire.properties["content_type"] == "application/x-queue-meta-signed"
        assert wire.properties["content_encoding"] == "binary"
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )
        assert (decoded.task, decoded.args, decoded.kwargs) == (
            "proj.add",
            [2, 3],
            {"z": 1},
        )

    def test_auth_round_trip(self, rsa2048: Identity, clock: Clock) -> None:
        registry = app_registry(AuthCodec, rsa2048, [rsa2048], clock)
        wire = message().encode(registry=registry, serializer="auth")
        assert wire.properties["content_type"] == "application/data"
        assert wire.properties["content_encoding"] == "utf-8"
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )
        assert decoded.args == [2, 3]

    def test_compression_wraps_the_envelope(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        wire = TaskMessage.new("proj.add", ["x" * 2000]).encode(
            registry=registry, serializer="signed", compression="zlib"
        )
        assert wire.headers["compression"] == "application/x-gzip"
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )
        assert decoded.task == "proj.add"

    @pytest.mark.parametrize(
        ("header", "value"),
        [
            ("task", "proj.delete_everything"),
            ("id", "00000000-0000-0000-0000-000000000000"),
            ("eta", None),
            ("expires", "2099-01-01T00:00:00+00:00"),
            ("retries", 0),
            ("timelimit", [None, None]),
        ],
    )
    def test_changed_routing_headers_are_refused(
        self, ed25519: Identity, clock: Clock, header: str, value: Any
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        wire = message().encode(registry=registry, serializer="signed")
        wire.headers[header] = value
        with pytest.raises(HeadersAlteredError, match=f"'{header}' was changed"):
            TaskMessage.decode(
                wire.body, wire.headers, wire.properties, registry=registry
            )

    def test_a_body_re_pointed_at_another_task_is_refused(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        add = message().encode(registry=registry, serializer="signed")
        other = TaskMessage.new("proj.refund").encode(
            registry=registry, serializer="signed"
        )
        # The attacker keeps the other message's headers and swaps in add's body.
        with pytest.raises(
            HeadersAlteredError, match=r"'task' was changed.*'proj\.add'"
        ):
            TaskMessage.decode(
                add.body, other.headers, add.properties, registry=registry
            )
        # The error is a SignatureError and a msgwire DecodeError: consumers reject it.
        with pytest.raises(DecodeError):
            TaskMessage.decode(
                add.body, other.headers, add.properties, registry=registry
            )

    def test_uncovered_headers_may_change(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        wire = message().encode(registry=registry, serializer="signed")
        wire.headers["argsrepr"] = "(9, 9)"
        wire.headers["x-custom"] = "added on the way"
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )
        assert decoded.argsrepr == "(9, 9)"

    def test_auth_does_not_protect_headers(
        self, rsa2048: Identity, clock: Clock
    ) -> None:
        # Documented limitation of Celery's format: the re-pointed body verifies.
        registry = app_registry(AuthCodec, rsa2048, [rsa2048], clock)
        wire = message().encode(registry=registry, serializer="auth")
        wire.headers["task"] = "proj.delete_everything"
        decoded = TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )
        assert decoded.task == "proj.delete_everything"

    def test_a_replayed_message_is_refused(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        wire = TaskMessage.new("proj.add").encode(
            registry=registry, serializer="signed"
        )
        clock.now = T0 + 3601
        with pytest.raises(ReplayError, match="replay window"):
            TaskMessage.decode(
                wire.body, wire.headers, wire.properties, registry=registry
            )

    def test_signed_values_other_than_task_bodies(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(SignedCodec, ed25519, [ed25519], clock)
        encoded = registry.dumps({"result": 5}, "signed")
        assert registry.loads(encoded.data, encoded.content_type) == {"result": 5}


class TestAcceptList:
    def test_a_trusted_signer_cannot_deliver_pickle(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        # The producer's registry serializes the inner payload with pickle.
        producer = app_registry(
            SignedCodec,
            ed25519,
            [ed25519],
            clock,
            serializer="pickle",
            accept=("json", "pickle"),
        )
        wire = message().encode(registry=producer, serializer="signed")
        worker = app_registry(SignedCodec, ed25519, [ed25519], clock)
        with pytest.raises(
            InnerContentDisallowedError, match="x-python-serialize"
        ) as info:
            TaskMessage.decode(
                wire.body, wire.headers, wire.properties, registry=worker
            )
        assert isinstance(info.value, ContentDisallowedError)
        assert isinstance(info.value, SignatureError)
        assert info.value.content_type == "application/x-python-serialize"

    def test_the_verifier_alone_decides_the_inner_types(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        # The reader lists only the signed type; the verifier accepts json.
        producer = app_registry(SignedCodec, ed25519, [ed25519], clock)
        wire = message().encode(registry=producer, serializer="signed")
        assert TaskMessage.decode(
            wire.body,
            wire.headers,
            wire.properties,
            registry=producer,
            accept=["signed"],
        ).args == [2, 3]

    def test_a_worker_accepting_only_signed_messages_refuses_unsigned_json(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        worker = app_registry(SignedCodec, ed25519, [ed25519], clock)
        unsigned = message().encode(registry=worker, serializer="json")
        with pytest.raises(ContentDisallowedError, match="application/json"):
            TaskMessage.decode(
                unsigned.body,
                unsigned.headers,
                unsigned.properties,
                registry=worker,
                accept=["signed"],
            )

    def test_auth_applies_the_accept_list_to_the_inner_type(
        self, rsa2048: Identity, clock: Clock
    ) -> None:
        producer = app_registry(
            AuthCodec,
            rsa2048,
            [rsa2048],
            clock,
            serializer="pickle",
            accept=("pickle",),
        )
        wire = message().encode(registry=producer, serializer="auth")
        worker = app_registry(AuthCodec, rsa2048, [rsa2048], clock)
        with pytest.raises(InnerContentDisallowedError):
            TaskMessage.decode(
                wire.body, wire.headers, wire.properties, registry=worker
            )

    def test_the_outer_type_is_checked_first_by_msgwire(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        registry = app_registry(
            SignedCodec, ed25519, [ed25519], clock, registry_accept=("json",)
        )
        wire = message().encode(registry=registry, serializer="signed")
        with pytest.raises(ContentDisallowedError, match="x-queue-meta-signed"):
            TaskMessage.decode(
                wire.body, wire.headers, wire.properties, registry=registry
            )


class TestConfiguration:
    def test_both_codecs_are_entry_points(self) -> None:
        found = {
            ep.name: ep.value
            for ep in importlib.metadata.entry_points(group="msgwire.codecs")
            if ep.name in ("auth", "signed")
        }
        assert found == {
            "auth": "signing._codec:AuthCodec",
            "signed": "signing._codec:SignedCodec",
        }

    def test_an_entry_point_instance_says_how_to_configure_it(self) -> None:
        registry = Registry(accept=["signed", "json"])
        codec = registry.codec("signed")
        assert isinstance(codec, SignedCodec)
        assert codec.signer is None
        assert codec.verifier is None
        with pytest.raises(
            NotConfiguredError, match=r"no signer.*registry\.register\(SignedCodec"
        ):
            TaskMessage.new("proj.add").encode(registry=registry, serializer="signed")
        with pytest.raises(
            NotConfiguredError, match="no verifier, so it cannot verify"
        ):
            registry.loads(b"\x89QMS", "application/x-queue-meta-signed")

    def test_the_native_content_type_is_found_without_registering(self) -> None:
        assert isinstance(
            Registry().codec("application/x-queue-meta-signed"), SignedCodec
        )

    def test_a_producer_only_and_a_consumer_only_codec(
        self, ed25519: Identity, clock: Clock
    ) -> None:
        producer = SignedCodec(signer=ed25519.signer(clock=clock))
        consumer = SignedCodec(
            verifier=Verifier(CertificateStore([ed25519.cert_pem]), clock=clock)
        )
        data = producer.dumps([1, 2])
        assert consumer.loads(data) == [1, 2]
        with pytest.raises(NotConfiguredError, match="no verifier"):
            producer.loads(data)
        with pytest.raises(NotConfiguredError, match="no signer"):
            consumer.dumps([1])

    def test_signing_codecs_do_not_nest(self) -> None:
        for serializer in ("auth", "signed"):
            with pytest.raises(ValueError, match="do not nest"):
                SignedCodec(serializer=serializer)

    def test_registering_auth_takes_application_data_in_that_registry_only(
        self, rsa2048: Identity, clock: Clock
    ) -> None:
        registry = app_registry(AuthCodec, rsa2048, [rsa2048], clock)
        assert isinstance(registry.codec("application/data"), AuthCodec)
        assert isinstance(Registry().codec("application/data"), RawCodec)
        assert isinstance(msgwire.default_registry.codec("application/data"), RawCodec)

    def test_repr_names_the_configuration(self, ed25519: Identity) -> None:
        codec = SignedCodec(
            signer=ed25519.signer(),
            verifier=Verifier(CertificateStore([ed25519.cert_pem])),
        )
        assert repr(codec) == (
            "<SignedCodec 'signed' application/x-queue-meta-signed inner='json' "
            "signer='CN=ed25519' verifier=1 trusted certificates>"
        )
        assert "signer=none verifier=none" in repr(AuthCodec())


class TestTwoApplications:
    def test_two_apps_with_different_keys_in_one_process(self, clock: Clock) -> None:
        alice, bob = make_identity("ed25519"), make_identity("ecdsa")
        app_a = app_registry(SignedCodec, alice, [alice], clock)
        app_b = app_registry(SignedCodec, bob, [bob], clock)
        wire_a = message().encode(registry=app_a, serializer="signed")
        wire_b = message().encode(registry=app_b, serializer="signed")
        decoded = TaskMessage.decode(
            wire_a.body, wire_a.headers, wire_a.properties, registry=app_a
        )
        assert decoded.args == [2, 3]
        decoded = TaskMessage.decode(
            wire_b.body, wire_b.headers, wire_b.properties, registry=app_b
        )
        assert decoded.args == [2, 3]
        with pytest.raises(UntrustedSignerError):
            TaskMessage.decode(
                wire_a.body, wire_a.headers, wire_a.properties, registry=app_b
            )
        with pytest.raises(UntrustedSignerError):
            TaskMessage.decode(
                wire_b.body, wire_b.headers, wire_b.properties, registry=app_a
            )

    def test_two_auth_apps_in_one_process(self, clock: Clock) -> None:
        alice, bob = make_identity("rsa"), make_identity("rsa")
        app_a = app_registry(AuthCodec, alice, [alice], clock)
        app_b = app_registry(AuthCodec, bob, [alice, bob], clock)
        wire_a = message().encode(registry=app_a, serializer="auth")
        wire_b = message().encode(registry=app_b, serializer="auth")
        # b trusts a; a does not trust b.
        decoded = TaskMessage.decode(
            wire_a.body, wire_a.headers, wire_a.properties, registry=app_b
        )
        assert decoded.args == [2, 3]
        with pytest.raises(UntrustedSignerError):
            TaskMessage.decode(
                wire_b.body, wire_b.headers, wire_b.properties, registry=app_a
            )
