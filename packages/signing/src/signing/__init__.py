"""signing: sign serialized messages and verify them before anything is decoded.

A :class:`Signer` (a private key and its certificate) signs; a
:class:`Verifier` checks messages against a :class:`CertificateStore` of
trusted certificates and an accept list of inner content types. Two formats:
Celery's ``auth`` (:meth:`Signer.sign_auth`, :meth:`Verifier.verify_auth`,
:class:`AuthCodec`) and the native one, which also covers the routing headers
and a timestamp (:meth:`Signer.sign`, :meth:`Verifier.verify`,
:class:`SignedCodec`). Both codecs plug into a :class:`msgwire.Registry`.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from ._certs import Certificate as Certificate
from ._certs import CertificateStore as CertificateStore
from ._codec import AuthCodec as AuthCodec
from ._codec import SignedCodec as SignedCodec
from ._keys import DIGESTS as _DIGESTS
from ._native import COVERED_HEADERS as COVERED_HEADERS
from ._signer import Signer as Signer
from ._verifier import AUTH_CONTENT_TYPE as AUTH_CONTENT_TYPE
from ._verifier import SIGNED_CONTENT_TYPE as SIGNED_CONTENT_TYPE
from ._verifier import Verified as Verified
from ._verifier import Verifier as Verifier
from .errors import CertificateExpiredError as CertificateExpiredError
from .errors import EnvelopeError as EnvelopeError
from .errors import HeadersAlteredError as HeadersAlteredError
from .errors import InnerContentDisallowedError as InnerContentDisallowedError
from .errors import InsecureKeyFileWarning as InsecureKeyFileWarning
from .errors import InvalidSignatureError as InvalidSignatureError
from .errors import KeyLoadError as KeyLoadError
from .errors import MalformedSignedMessageError as MalformedSignedMessageError
from .errors import NotConfiguredError as NotConfiguredError
from .errors import ReplayError as ReplayError
from .errors import SignatureError as SignatureError
from .errors import SigningError as SigningError
from .errors import UnsupportedKeyError as UnsupportedKeyError
from .errors import UntrustedSignerError as UntrustedSignerError

__version__ = _version("signing")

#: Digest names for RSA and ECDSA signatures.
DIGESTS: tuple[str, ...] = tuple(_DIGESTS)

__all__ = [
    "AUTH_CONTENT_TYPE",
    "COVERED_HEADERS",
    "DIGESTS",
    "SIGNED_CONTENT_TYPE",
    "AuthCodec",
    "Certificate",
    "CertificateExpiredError",
    "CertificateStore",
    "EnvelopeError",
    "HeadersAlteredError",
    "InnerContentDisallowedError",
    "InsecureKeyFileWarning",
    "InvalidSignatureError",
    "KeyLoadError",
    "MalformedSignedMessageError",
    "NotConfiguredError",
    "ReplayError",
    "SignatureError",
    "SignedCodec",
    "Signer",
    "SigningError",
    "UnsupportedKeyError",
    "UntrustedSignerError",
    "Verified",
    "Verifier",
    "__version__",
]
