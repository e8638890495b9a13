from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from signing_helpers import Clock

from signing import CertificateStore, Verifier
from signing.testing import Identity, make_identity

# Shared CI machines are slow and noisy: no per-example deadline; more examples
# when asked for (HYPOTHESIS_PROFILE=thorough).
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def rsa2048() -> Identity:
    return make_identity("rsa", common_name="rsa2048", rsa_bits=2048)


@pytest.fixture(scope="session")
def rsa4096() -> Identity:
    # Slow to generate: made once, used by the few tests that need it.
    return make_identity("rsa", common_name="rsa4096", rsa_bits=4096)


@pytest.fixture(scope="session")
def ecdsa256() -> Identity:
    return make_identity("ecdsa", common_name="p256", curve="P-256")


@pytest.fixture(scope="session")
def ecdsa384() -> Identity:
    return make_identity("ecdsa", common_name="p384", curve="P-384")


@pytest.fixture(scope="session")
def ed25519() -> Identity:
    return make_identity("ed25519", common_name="ed25519")


@pytest.fixture(scope="session")
def stranger() -> Identity:
    """An identity no store in these tests trusts."""
    return make_identity("rsa", common_name="stranger")


@pytest.fixture(scope="session")
def identities(
    rsa2048: Identity, ecdsa256: Identity, ecdsa384: Identity, ed25519: Identity
) -> dict[str, Identity]:
    """One identity per supported key type (RSA-4096 has its own fixture)."""
    return {
        "rsa2048": rsa2048,
        "ecdsa256": ecdsa256,
        "ecdsa384": ecdsa384,
        "ed25519": ed25519,
    }


@pytest.fixture(scope="session")
def store(identities: dict[str, Identity]) -> CertificateStore:
    return CertificateStore([identity.cert_pem for identity in identities.values()])


@pytest.fixture
def make_verifier(store: CertificateStore, clock: Clock) -> Callable[..., Verifier]:
    """Build a verifier on the shared store and the test's clock."""

    def make(**options: object) -> Verifier:
        options.setdefault("clock", clock)
        return Verifier(options.pop("store", store), **options)  # type: ignore[arg-type]

    return make
