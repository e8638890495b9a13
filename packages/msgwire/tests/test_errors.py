from __future__ import annotations

import pickle

import pytest

from msgwire import errors

EXAMPLES = [
    errors.MsgwireError("base"),
    errors.EncodeError("cannot encode"),
    errors.DecodeError("cannot decode"),
    errors.SizeLimitError("too large"),
    errors.MalformedMessageError("bad header"),
    errors.ContentDisallowedError("application/x-python-serialize", frozenset({"a/b"})),
    errors.UnknownCodecError("jsn", ("json", "yaml")),
    errors.UnknownCompressorError("zlb", ("zlib",)),
    errors.MissingDependencyError("msgpack codec", "msgpack"),
    errors.PluginConflictError("msgwire.codecs", "json", ("a: x:Y", "b: z:W")),
]


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda exc: type(exc).__name__)
def test_every_public_exception_survives_pickling(exc: Exception) -> None:
    """Exceptions cross process boundaries under prefork, so they must pickle."""
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert clone.args == exc.args


def test_all_exceptions_share_one_base_class() -> None:
    for exc in EXAMPLES:
        assert isinstance(exc, errors.MsgwireError)


def test_decode_failures_are_value_errors_and_lookups_are_lookup_errors() -> None:
    assert issubclass(errors.DecodeError, ValueError)
    assert issubclass(errors.SizeLimitError, errors.DecodeError)
    assert issubclass(errors.MalformedMessageError, errors.DecodeError)
    assert issubclass(errors.UnknownCodecError, LookupError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def test_unknown_codec_names_the_closest_match_and_what_is_installed() -> None:
    message = str(errors.UnknownCodecError("jsno", ("json", "msgpack", "yaml")))
    assert "'jsno'" in message
    assert "did you mean 'json'?" in message
    assert "installed: json, msgpack, yaml" in message


def test_content_disallowed_says_how_to_allow_it() -> None:
    exc = errors.ContentDisallowedError(
        "application/x-yaml", frozenset({"application/json"})
    )
    assert "'application/x-yaml'" in str(exc)
    assert "application/json" in str(exc)
    assert "accept" in str(exc)


def test_missing_dependency_names_the_extra() -> None:
    exc = errors.MissingDependencyError("YAML codec", "yaml")
    assert "pip install 'msgwire[yaml]'" in str(exc)
