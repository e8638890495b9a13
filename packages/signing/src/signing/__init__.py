"""signing: sign serialized messages and verify them before anything is decoded.

This release provides the package's error hierarchy; signers, verifiers, the
certificate store and the msgwire codecs follow (see CHANGELOG.md).
"""

from __future__ import annotations

from importlib.metadata import version as _version

from .errors import CertificateExpiredError as CertificateExpiredError
from .errors import InvalidSignatureError as InvalidSignatureError
from .errors import KeyLoadError as KeyLoadError
from .errors import MalformedSignedMessageError as MalformedSignedMessageError
from .errors import ReplayError as ReplayError
from .errors import SignatureError as SignatureError
from .errors import SigningError as SigningError
from .errors import UnsupportedKeyError as UnsupportedKeyError
from .errors import UntrustedSignerError as UntrustedSignerError

__version__ = _version("signing")

__all__ = [
    "CertificateExpiredError",
    "InvalidSignatureError",
    "KeyLoadError",
    "MalformedSignedMessageError",
    "ReplayError",
    "SignatureError",
    "SigningError",
    "UnsupportedKeyError",
    "UntrustedSignerError",
    "__version__",
]
