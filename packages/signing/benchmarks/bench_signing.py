"""Signs and verifies per second for a 1 KB message, per key type and format.

Run with ``nox -s bench -- signing`` (or ``python benchmarks/bench_signing.py``).
``sign`` is :meth:`Signer.sign` (native) or :meth:`Signer.sign_auth`; ``verify``
is :meth:`Verifier.verify` or :meth:`Verifier.verify_auth` of that output,
every check included (store lookup, certificate validity, signature, replay
window, covered headers, accept list). Each figure is the best of several
rounds. ``task msg`` is a whole signed task message through msgwire:
``TaskMessage.encode`` plus ``TaskMessage.decode``, in microseconds.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from collections.abc import Callable

import cryptography

from msgwire import Registry, TaskMessage
from signing import AuthCodec, CertificateStore, SignedCodec, Verifier, __version__
from signing.testing import Identity, make_identity

BODY = b'["' + b"x" * 1020 + b'"]'  # 1024 bytes of JSON
HEADERS = {
    "task": "proj.add",
    "id": "fbbe5382-fd5c-4189-83dc-110a35fc8981",
    "eta": None,
    "expires": None,
    "retries": 0,
    "timelimit": [None, None],
}
CONTENT_TYPE = "application/json"


def best_rate(func: Callable[[], object], seconds: float, rounds: int) -> float:
    """Return the best calls per second of *func* over *rounds* timed runs."""
    number = 1
    while True:  # calibrate: enough calls to fill about `seconds`
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            break
        number *= 2
    number = max(1, int(number * seconds / elapsed))
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = max(best, number / (time.perf_counter() - start))
    return best


def message_micros(registry: Registry, serializer: str, rounds: int) -> float:
    """Return the µs of encoding and decoding one signed task message."""
    message = TaskMessage.new("proj.add", ["x" * 950])

    def round_trip() -> object:
        wire = message.encode(registry=registry, serializer=serializer)
        return TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry
        )

    return 1e6 / best_rate(round_trip, 0.3, rounds)


def bench_key(
    label: str, identity: Identity, verifier: Verifier, options: argparse.Namespace
) -> None:
    """Print one line per format the key can sign."""
    signer = identity.signer()
    formats: list[tuple[str, Callable[[], bytes], Callable[[bytes], object]]] = [
        (
            "native",
            lambda: signer.sign(
                BODY,
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                headers=HEADERS,
            ),
            lambda signed: verifier.verify(signed, headers=HEADERS),
        )
    ]
    if identity.certificate.key_type == "rsa":
        formats.append(
            (
                "auth",
                lambda: signer.sign_auth(
                    BODY, content_type=CONTENT_TYPE, content_encoding="utf-8"
                ),
                verifier.verify_auth,
            )
        )
    for name, sign, check in formats:
        signed = sign()
        sign_rate = best_rate(sign, options.seconds, options.rounds)
        verify_rate = best_rate(
            functools.partial(check, signed), options.seconds, options.rounds
        )
        codec = (
            SignedCodec(signer=signer, verifier=verifier)
            if name == "native"
            else AuthCodec(signer=signer, verifier=verifier)
        )
        registry = Registry(accept=[codec.name, "json"], codecs=[codec])
        micros = message_micros(registry, codec.name, options.rounds)
        print(
            f"{label:<12} {name:<7} {sign_rate:9.0f} {verify_rate:9.0f} "
            f"{len(signed):9d} {micros:9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of a round")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds; the best is kept"
    )
    options = parser.parse_args()

    keys: list[tuple[str, Identity]] = [
        ("RSA-2048", make_identity("rsa", rsa_bits=2048)),
        ("RSA-4096", make_identity("rsa", rsa_bits=4096)),
        ("ECDSA P-256", make_identity("ecdsa", curve="P-256")),
        ("ECDSA P-384", make_identity("ecdsa", curve="P-384")),
        ("Ed25519", make_identity("ed25519")),
    ]
    store = CertificateStore([identity.cert_pem for _, identity in keys])
    verifier = Verifier(store)
    print(
        f"signing {__version__}, cryptography {cryptography.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{len(BODY)}-byte body, best of {options.rounds} rounds of "
        f"{options.seconds} s; operations per second, task msg in µs"
    )
    print(
        f"{'key':<12} {'format':<7} {'sign/s':>9} {'verify/s':>9} "
        f"{'envelope':>9} {'task msg':>9}"
    )
    for label, identity in keys:
        bench_key(label, identity, verifier, options)


if __name__ == "__main__":
    main()
