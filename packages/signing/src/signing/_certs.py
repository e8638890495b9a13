"""X.509 certificates, the signer ids that name them, and the trusted store."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ._keys import KeyType, PublicKey, describe_key, key_type
from .errors import CertificateExpiredError, KeyLoadError

__all__ = ["Certificate", "CertificateStore"]

logger = logging.getLogger(__name__)

_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


def _auth_id(cert: x509.Certificate) -> str:
    # Celery's id: the issuer's attribute values in order, then the serial.
    values = (
        attr.value if isinstance(attr.value, str) else attr.value.hex()
        for attr in cert.issuer
    )
    return f"{' '.join(values)} {cert.serial_number}"


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


class Certificate:
    """An X.509 certificate with the ids signed messages name it by.

    Args:
        certificate: The parsed certificate.
        source: Where it was read from (a file path), for messages.

    Attributes:
        x509: The :class:`cryptography.x509.Certificate`.
        public_key: Its public key.
        key_type: ``"rsa"``, ``"ecdsa"`` or ``"ed25519"``.
        fingerprint: SHA-256 of the DER certificate: the native format's signer id.
        auth_id: Celery's signer id: the issuer's attribute values joined by
            spaces, a space, and the serial number in decimal.
        subject: The subject in RFC 4514 form.
        not_valid_before: Start of validity (aware, UTC).
        not_valid_after: End of validity (aware, UTC).
        source: The file it came from, or ``None``.

    Raises:
        UnsupportedKeyError: The public key type, size or curve is not supported.
    """

    __slots__ = (
        "auth_id",
        "fingerprint",
        "key_type",
        "not_valid_after",
        "not_valid_before",
        "public_key",
        "source",
        "subject",
        "x509",
    )

    def __init__(
        self, certificate: x509.Certificate, *, source: str | None = None
    ) -> None:
        self.x509 = certificate
        self.source = source
        self.subject = certificate.subject.rfc4514_string()
        where = f" in {source!r}" if source else ""
        public_key = certificate.public_key()
        self.key_type: KeyType = key_type(
            public_key, f"the certificate {self.subject!r}{where}"
        )
        self.public_key: PublicKey = public_key  # type: ignore[assignment]  # checked above
        self.fingerprint = certificate.fingerprint(hashes.SHA256())
        self.auth_id = _auth_id(certificate)
        self.not_valid_before = certificate.not_valid_before_utc
        self.not_valid_after = certificate.not_valid_after_utc

    @classmethod
    def from_pem(cls, data: bytes | str, *, source: str | None = None) -> Certificate:
        """Parse exactly one PEM certificate.

        Raises:
            KeyLoadError: *data* does not hold exactly one PEM certificate.
            UnsupportedKeyError: Its key is not supported.
        """
        found = _load_pems(data, source)
        if len(found) != 1:
            where = repr(source) if source else "the PEM data"
            raise KeyLoadError(
                f"{where} holds {len(found)} certificates; expected exactly one",
            )
        return found[0]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Certificate:
        """Read exactly one PEM certificate from a file.

        Raises:
            KeyLoadError: The file cannot be read or does not hold one certificate.
            UnsupportedKeyError: Its key is not supported.
        """
        return cls.from_pem(_read(Path(path)), source=str(path))

    @property
    def signer_id(self) -> str:
        """The native signer id as lowercase hex (for messages and logs)."""
        return self.fingerprint.hex()

    def validity_problem(self, now: datetime) -> str | None:
        """Return why the certificate is not valid at *now*, or ``None`` if it is."""
        if now >= self.not_valid_after:
            return f"expired at {_utc_text(self.not_valid_after)}"
        if now < self.not_valid_before:
            return f"is not valid before {_utc_text(self.not_valid_before)}"
        return None

    def check_valid(self, now: datetime, signer: str) -> None:
        """Raise :class:`CertificateExpiredError` unless valid at *now*.

        Args:
            now: The time to check, timezone-aware.
            signer: How to name the signer in the message.
        """
        problem = self.validity_problem(now)
        if problem is not None:
            raise CertificateExpiredError(
                f"the certificate of signer {signer} ({self.subject}) {problem}; "
                "messages signed with it are refused: renew it and add the new "
                "certificate to the trusted store",
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Certificate):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return (
            f"<Certificate {self.subject!r} {describe_key(self.public_key)} "
            f"auth_id={self.auth_id!r} fingerprint={self.signer_id[:16]}... "
            f"valid {_utc_text(self.not_valid_before)}.."
            f"{_utc_text(self.not_valid_after)}>"
        )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(
            f"cannot read the certificate file {str(path)!r}: "
            f"{exc.strerror or type(exc).__name__}",
        ) from exc


def _load_pems(data: bytes | str, source: str | None) -> list[Certificate]:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    where = repr(source) if source else "the PEM data"
    if _PEM_MARKER not in raw:
        hint = "" if source else "; to read files use CertificateStore.from_files()"
        raise KeyLoadError(f"no PEM certificate in {where}{hint}")
    try:
        parsed = x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise KeyLoadError(f"cannot parse the PEM certificate in {where}") from exc
    return [Certificate(cert, source=source) for cert in parsed]


def _coerce(item: Certificate | x509.Certificate | bytes | str) -> list[Certificate]:
    if isinstance(item, Certificate):
        return [item]
    if isinstance(item, x509.Certificate):
        return [Certificate(item)]
    if isinstance(item, (bytes, bytearray, memoryview, str)):
        return _load_pems(bytes(item) if not isinstance(item, str) else item, None)
    raise TypeError(
        "a trusted certificate must be a signing.Certificate, a "
        f"cryptography x509.Certificate, or PEM bytes/str; got {type(item).__name__}",
    )


def _directory_files(directory: Path) -> list[Path]:
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise KeyLoadError(
            f"cannot list the certificate directory {str(directory)!r}: "
            f"{exc.strerror or type(exc).__name__}",
        ) from exc
    return [p for p in entries if not p.name.startswith(".") and p.is_file()]


@dataclass(frozen=True)
class _Snapshot:
    """One immutable generation of the store; lookups never take a lock."""

    certificates: tuple[Certificate, ...] = ()
    by_fingerprint: dict[bytes, Certificate] = field(default_factory=dict)
    by_auth_id: dict[str, tuple[Certificate, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, certificates: Iterable[Certificate]) -> _Snapshot:
        by_fingerprint: dict[bytes, Certificate] = {}
        by_auth_id: dict[str, list[Certificate]] = {}
        for cert in certificates:
            if cert.fingerprint in by_fingerprint:
                continue
            by_fingerprint[cert.fingerprint] = cert
            by_auth_id.setdefault(cert.auth_id, []).append(cert)
        for auth_id, certs in by_auth_id.items():
            if len(certs) > 1:
                logger.warning(
                    "%d trusted certificates share the auth signer id %r (issuer "
                    "and serial); auth messages naming it are checked against each",
                    len(certs),
                    auth_id,
                )
        return cls(
            tuple(by_fingerprint.values()),
            by_fingerprint,
            {key: tuple(value) for key, value in by_auth_id.items()},
        )


class CertificateStore:
    """The certificates whose holders a verifier trusts, found by signer id.

    Several certificates may be trusted at once (key rotation: add the new
    certificate everywhere, switch the signers, then remove the old one).
    There is no chain building: each trusted signer's own certificate must be
    in the store, as in Celery. Certificates that are expired or not yet valid
    are kept, with a warning in the log, and the messages they signed are
    refused with the reason; so one expiring certificate never stops a store
    from loading.

    Args:
        certificates: Certificates, as :class:`Certificate`, cryptography
            certificates, or PEM data (bytes or str, one or more each); or
            one PEM bytes/str holding one or more certificates.

    Raises:
        KeyLoadError: PEM data holds no parsable certificate.
        UnsupportedKeyError: A certificate's key is not supported.
    """

    def __init__(
        self,
        certificates: Iterable[Certificate | x509.Certificate | bytes | str]
        | bytes
        | str = (),
    ) -> None:
        if isinstance(certificates, (bytes, str)):
            certificates = [certificates]
        self._static: tuple[Certificate, ...] = tuple(
            cert for item in certificates for cert in _coerce(item)
        )
        self._directories: tuple[Path, ...] = ()
        self._files: tuple[Path, ...] = ()
        self._reload_interval: float | None = None
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.build(self._static)
        self._loaded_at = time.monotonic()

    @classmethod
    def from_directory(
        cls, path: str | os.PathLike[str], *, reload_interval: float | None = None
    ) -> CertificateStore:
        """Trust every certificate in the files of a directory.

        Every regular file whose name does not start with a dot must hold one
        or more PEM certificates (Celery's ``security_cert_store`` directories
        work unchanged).

        Args:
            path: The directory.
            reload_interval: If set, a lookup of an unknown signer re-reads the
                directory, at most once per this many seconds, so certificates
                added later are trusted without a restart.

        Raises:
            KeyLoadError: The directory or a file in it cannot be read or parsed.
            UnsupportedKeyError: A certificate's key is not supported.
        """
        store = cls()
        store._directories = (Path(path),)
        store._set_interval(reload_interval)
        store.reload()
        return store

    @classmethod
    def from_files(
        cls, *paths: str | os.PathLike[str], reload_interval: float | None = None
    ) -> CertificateStore:
        """Trust the certificates in these PEM files (one or more per file).

        Args:
            paths: The files.
            reload_interval: As for :meth:`from_directory`.

        Raises:
            KeyLoadError: A file cannot be read or parsed.
            UnsupportedKeyError: A certificate's key is not supported.
        """
        store = cls()
        store._files = tuple(Path(path) for path in paths)
        store._set_interval(reload_interval)
        store.reload()
        return store

    def _set_interval(self, interval: float | None) -> None:
        if interval is not None and not interval >= 0:
            raise ValueError(
                f"reload_interval must be a number of seconds >= 0, got {interval!r}"
            )
        self._reload_interval = interval

    def _sources(self) -> str:
        return ", ".join(repr(str(p)) for p in (*self._directories, *self._files))

    def _read_sources(self) -> list[Certificate]:
        found = list(self._static)
        for directory in self._directories:
            files = _directory_files(directory)
            if not files:
                logger.warning(
                    "the certificate directory %r holds no files; no signer is "
                    "trusted through it",
                    str(directory),
                )
            for file in files:
                found.extend(_load_pems(_read(file), str(file)))
        for file in self._files:
            found.extend(_load_pems(_read(file), str(file)))
        return found

    def reload(self) -> None:
        """Re-read the store's files or directory and swap the new set in.

        Lookups running meanwhile see either the old or the new set. If
        anything fails to load, the store keeps its previous certificates.

        Raises:
            KeyLoadError: A file cannot be read or parsed.
            UnsupportedKeyError: A certificate's key is not supported.
        """
        with self._lock:
            try:
                found = self._read_sources()
            finally:
                self._loaded_at = time.monotonic()
            self._install(found)

    def replace(
        self,
        certificates: Iterable[Certificate | x509.Certificate | bytes | str]
        | bytes
        | str,
    ) -> None:
        """Replace the certificates given in memory (files and directories stay).

        Raises:
            KeyLoadError: PEM data holds no parsable certificate.
            UnsupportedKeyError: A certificate's key is not supported.
        """
        if isinstance(certificates, (bytes, str)):
            certificates = [certificates]
        static = tuple(cert for item in certificates for cert in _coerce(item))
        with self._lock:
            self._static = static
            found = self._read_sources()
            self._loaded_at = time.monotonic()
            self._install(found)

    def _install(self, found: list[Certificate]) -> None:
        old = self._snapshot
        new = _Snapshot.build(found)
        now = datetime.now(timezone.utc)
        for cert in new.certificates:
            if cert.fingerprint in old.by_fingerprint:
                continue
            problem = cert.validity_problem(now)
            if problem is not None:
                logger.warning(
                    "trusted certificate %s (%s) %s; messages it signed are refused",
                    cert.subject,
                    cert.source or "in memory",
                    problem,
                )
        self._snapshot = new
        added = len(new.by_fingerprint.keys() - old.by_fingerprint.keys())
        removed = len(old.by_fingerprint.keys() - new.by_fingerprint.keys())
        if self._directories or self._files:
            logger.info(
                "trusting %d certificates from %s (%d added, %d removed)",
                len(new.certificates),
                self._sources(),
                added,
                removed,
            )

    def _maybe_reload(self) -> bool:
        interval = self._reload_interval
        if interval is None or time.monotonic() - self._loaded_at < interval:
            return False
        try:
            self.reload()
        except (KeyLoadError, ValueError) as exc:
            logger.warning(
                "reloading trusted certificates from %s failed; keeping the "
                "previous ones: %s",
                self._sources(),
                exc,
            )
            return False
        return True

    @property
    def certificates(self) -> tuple[Certificate, ...]:
        """The trusted certificates, in load order."""
        return self._snapshot.certificates

    def get(self, fingerprint: bytes) -> Certificate | None:
        """Return the certificate with this SHA-256 fingerprint (native signer id)."""
        found = self._snapshot.by_fingerprint.get(fingerprint)
        if found is None and self._maybe_reload():
            found = self._snapshot.by_fingerprint.get(fingerprint)
        return found

    def find_auth(self, auth_id: str) -> tuple[Certificate, ...]:
        """Return the certificates with this Celery signer id (usually one)."""
        found = self._snapshot.by_auth_id.get(auth_id, ())
        if not found and self._maybe_reload():
            found = self._snapshot.by_auth_id.get(auth_id, ())
        return found

    def __len__(self) -> int:
        return len(self._snapshot.certificates)

    def __iter__(self) -> Iterator[Certificate]:
        return iter(self._snapshot.certificates)

    def __contains__(self, item: object) -> bool:
        snapshot = self._snapshot
        if isinstance(item, Certificate):
            return item.fingerprint in snapshot.by_fingerprint
        if isinstance(item, bytes):
            return item in snapshot.by_fingerprint
        if isinstance(item, str):
            return item in snapshot.by_auth_id
        return False

    def __repr__(self) -> str:
        sources = self._sources()
        where = f" from {sources}" if sources else ""
        return f"<CertificateStore {len(self)} certificates{where}>"
