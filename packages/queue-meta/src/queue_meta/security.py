"""The app's msgwire registry: accepted content types and message signing.

With ``security_key``, ``security_certificate`` and ``security_cert_store``
set, every task message is signed by the producer and verified by the worker
before anything is deserialized: ``signing_format="auth"`` is Celery's
``auth`` serializer (body only), ``"native"`` also covers the routing
headers and a timestamp, and refuses messages signed more than
``signing_max_age`` seconds ago (counted from the eta for delayed tasks).
Only signed messages are accepted then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgwire import Registry

from .errors import ImproperlyConfiguredError

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["build_registry", "signing_serializer"]

_FORMATS = {"auth": "auth", "native": "signed"}


def signing_serializer(conf: Settings) -> str | None:
    """The codec name task messages are sent with when signing is on, else None."""
    if not (conf.security_key or conf.security_certificate or conf.security_cert_store):
        return None
    return _FORMATS.get(conf.signing_format, conf.signing_format)


def build_registry(conf: Settings) -> Registry:
    """A registry accepting ``accept_content``, with signing codecs when configured.

    Raises:
        ImproperlyConfiguredError: Signing is half configured, or its files
            cannot be read.
    """
    serializer = signing_serializer(conf)
    if serializer is None:
        return Registry(accept=list(conf.accept_content))
    missing = [
        name
        for name in ("security_key", "security_certificate", "security_cert_store")
        if not getattr(conf, name)
    ]
    if missing:
        raise ImproperlyConfiguredError(
            f"message signing needs security_key, security_certificate and "
            f"security_cert_store; missing: {', '.join(missing)}"
        )
    if serializer not in ("auth", "signed"):
        raise ImproperlyConfiguredError(
            f"signing_format must be 'auth' (Celery-compatible) or 'native', got "
            f"{conf.signing_format!r}"
        )
    from signing import AuthCodec, CertificateStore, SignedCodec, Signer, Verifier

    try:
        signer = Signer.from_files(
            key=str(conf.security_key),
            cert=str(conf.security_certificate),
            digest=conf.security_digest,
            password=conf.security_key_password,
        )
        store = CertificateStore.from_directory(str(conf.security_cert_store))
    except (OSError, ValueError) as exc:
        raise ImproperlyConfiguredError(f"message signing: {exc}") from exc
    inner = set(conf.accept_content) - {"auth", "signed", "application/data"}
    try:
        verifier = Verifier(
            store,
            accept=inner or {"json"},
            digest=conf.security_digest,
            max_age=conf.signing_max_age,
        )
    except ValueError as exc:
        raise ImproperlyConfiguredError(f"message signing: {exc}") from exc
    codec_class = AuthCodec if serializer == "auth" else SignedCodec
    codec = codec_class(signer=signer, verifier=verifier)
    return Registry(accept=[serializer], codecs=[codec])
