"""The settings of a queue-meta app (``app.conf``): typed, validated, Celery-named.

Settings come from four places, later ones winning: the defaults below,
environment variables (``QUEUE_`` + the setting's name in upper case, read when
:class:`Settings` is given an *environ*), the mapping given to the constructor,
and later calls to :meth:`Settings.update`, :meth:`Settings.from_object`, item
or attribute assignment.

Names are Celery's lowercase setting names wherever Celery has the same
setting, so a Celery configuration module mostly works unchanged. Celery's old
upper-case names (``BROKER_URL``, ``CELERY_TASK_SERIALIZER``, ...) and the
aliases ``broker`` and ``backend`` are accepted too. A name Celery has but
queue-meta does not support (``beat_schedule``, ``broker_pool_limit``, ...) is
stored aside and logged once as a warning; any other unknown name is a
:class:`ConfigurationError` naming the closest valid one, as is a value of the
wrong type. A failed update changes nothing.

Defaults differ from Celery's where safety asks for it: only JSON is accepted
(``accept_content``), tasks are acknowledged after they ran
(``task_acks_late=True``) and a worker prefetches one message per process
(``worker_prefetch_multiplier=1``).

Durations are seconds as ``float``; a :class:`datetime.timedelta` is accepted
and converted. Passwords never appear in ``repr()``, in error messages or in
:meth:`Settings.as_dict` output: ``security_key_password`` is masked, and so is
the password part of URLs (``redis://user:****@host``).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import difflib
import importlib
import inspect
import json
import logging
import math
import os
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeAlias, TypeVar, cast, overload

from .errors import ConfigurationError

__all__ = ["SETTINGS", "ConfigurationError", "Setting", "Settings"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ENV_PREFIX = "QUEUE_"
_MASK = "****"

# Celery's old upper-case names and the lowercase names that replaced them
# (Celery's "New lowercase settings" table, plus a few pre-4.0 spellings).
_CELERY_OLD_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "BROKER_URL": "broker_url",
        "BROKER_TRANSPORT": "broker_transport",
        "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
        "BROKER_CONNECTION_TIMEOUT": "broker_connection_timeout",
        "BROKER_CONNECTION_RETRY": "broker_connection_retry",
        "BROKER_CONNECTION_MAX_RETRIES": "broker_connection_max_retries",
        "BROKER_FAILOVER_STRATEGY": "broker_failover_strategy",
        "BROKER_HEARTBEAT": "broker_heartbeat",
        "BROKER_HEARTBEAT_CHECKRATE": "broker_heartbeat_checkrate",
        "BROKER_LOGIN_METHOD": "broker_login_method",
        "BROKER_POOL_LIMIT": "broker_pool_limit",
        "BROKER_USE_SSL": "broker_use_ssl",
        "CASSANDRA_COLUMN_FAMILY": "cassandra_table",
        "CASSANDRA_ENTRY_TTL": "cassandra_entry_ttl",
        "CASSANDRA_KEYSPACE": "cassandra_keyspace",
        "CASSANDRA_OPTIONS": "cassandra_options",
        "CASSANDRA_PORT": "cassandra_port",
        "CASSANDRA_READ_CONSISTENCY": "cassandra_read_consistency",
        "CASSANDRA_SERVERS": "cassandra_servers",
        "CASSANDRA_WRITE_CONSISTENCY": "cassandra_write_consistency",
        "CELERY_ACCEPT_CONTENT": "accept_content",
        "CELERY_ACKS_LATE": "task_acks_late",
        "CELERY_ACKS_ON_FAILURE_OR_TIMEOUT": "task_acks_on_failure_or_timeout",
        "CELERY_ALLOW_ERROR_CB_ON_CHORD_HEADER": "task_allow_error_cb_on_chord_header",
        "CELERY_ALWAYS_EAGER": "task_always_eager",
        "CELERY_ANNOTATIONS": "task_annotations",
        "CELERY_ARANGODB_BACKEND_SETTINGS": "arangodb_backend_settings",
        "CELERY_CACHE_BACKEND": "cache_backend",
        "CELERY_CACHE_BACKEND_OPTIONS": "cache_backend_options",
        "CELERY_COMPRESSION": "task_compression",
        "CELERY_COUCHBASE_BACKEND_SETTINGS": "couchbase_backend_settings",
        "CELERY_CREATE_MISSING_QUEUES": "task_create_missing_queues",
        "CELERY_CREATE_MISSING_QUEUE_EXCHANGE_TYPE": (
            "task_create_missing_queue_exchange_type"
        ),
        "CELERY_CREATE_MISSING_QUEUE_TYPE": "task_create_missing_queue_type",
        "CELERY_DEFAULT_DELIVERY_MODE": "task_default_delivery_mode",
        "CELERY_DEFAULT_EXCHANGE": "task_default_exchange",
        "CELERY_DEFAULT_EXCHANGE_TYPE": "task_default_exchange_type",
        "CELERY_DEFAULT_QUEUE": "task_default_queue",
        "CELERY_DEFAULT_QUEUE_TYPE": "task_default_queue_type",
        "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
        "CELERY_DEFAULT_ROUTING_KEY": "task_default_routing_key",
        "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
        "CELERY_EAGER_PROPAGATES": "task_eager_propagates",
        "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
        "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
        "CELERY_ENABLE_UTC": "enable_utc",
        "CELERY_EVENT_QUEUE_DURABLE": "event_queue_durable",
        "CELERY_EVENT_QUEUE_EXCLUSIVE": "event_queue_exclusive",
        "CELERY_EVENT_QUEUE_EXPIRES": "event_queue_expires",
        "CELERY_EVENT_QUEUE_PREFIX": "event_queue_prefix",
        "CELERY_EVENT_QUEUE_TTL": "event_queue_ttl",
        "CELERY_EVENT_SERIALIZER": "event_serializer",
        "CELERY_IGNORE_RESULT": "task_ignore_result",
        "CELERY_IMPORTS": "imports",
        "CELERY_INCLUDE": "include",
        "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
        "CELERY_MESSAGE_COMPRESSION": "result_compression",
        "CELERY_MONGODB_BACKEND_SETTINGS": "mongodb_backend_settings",
        "CELERY_PUBLISH_RETRY": "task_publish_retry",
        "CELERY_PUBLISH_RETRY_POLICY": "task_publish_retry_policy",
        "CELERY_QUEUES": "task_queues",
        "CELERY_REDIRECT_STDOUTS": "worker_redirect_stdouts",
        "CELERY_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
        "CELERY_REDIS_BACKEND_USE_SSL": "redis_backend_use_ssl",
        "CELERY_REDIS_DB": "redis_db",
        "CELERY_REDIS_HOST": "redis_host",
        "CELERY_REDIS_MAX_CONNECTIONS": "redis_max_connections",
        "CELERY_REDIS_PASSWORD": "redis_password",
        "CELERY_REDIS_PORT": "redis_port",
        "CELERY_REDIS_USERNAME": "redis_username",
        "CELERY_RESULT_BACKEND": "result_backend",
        "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
        "CELERY_RESULT_DB_TABLE_NAMES": "database_table_names",
        "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
        "CELERY_RESULT_EXCHANGE": "result_exchange",
        "CELERY_RESULT_EXCHANGE_TYPE": "result_exchange_type",
        "CELERY_RESULT_EXPIRES": "result_expires",
        "CELERY_RESULT_PERSISTENT": "result_persistent",
        "CELERY_RESULT_SERIALIZER": "result_serializer",
        "CELERY_ROUTES": "task_routes",
        "CELERY_SECURITY_CERTIFICATE": "security_certificate",
        "CELERY_SECURITY_CERT_STORE": "security_cert_store",
        "CELERY_SECURITY_KEY": "security_key",
        "CELERY_SECURITY_KEY_PASSWORD": "security_key_password",
        "CELERY_SEND_EVENTS": "worker_send_task_events",
        "CELERY_SEND_SENT_EVENT": "task_send_sent_event",
        "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
        "CELERY_STORE_ERRORS_EVEN_IF_IGNORED": "task_store_errors_even_if_ignored",
        "CELERY_TASK_ALWAYS_EAGER": "task_always_eager",
        "CELERY_TASK_PUBLISH_RETRY": "task_publish_retry",
        "CELERY_TASK_PUBLISH_RETRY_POLICY": "task_publish_retry_policy",
        "CELERY_TASK_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
        "CELERY_TASK_RESULT_EXPIRES": "result_expires",
        "CELERY_TASK_SERIALIZER": "task_serializer",
        "CELERY_TASK_TRACK_STARTED": "task_track_started",
        "CELERY_TIMEZONE": "timezone",
        "CELERY_TRACK_STARTED": "task_track_started",
        "CELERY_WORKER_DIRECT": "worker_direct",
        "CELERY_WORKER_LOG_FORMAT": "worker_log_format",
        "CELERY_WORKER_TASK_LOG_FORMAT": "worker_task_log_format",
        "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
        "CELERYBEAT_SCHEDULE": "beat_schedule",
        "CELERYBEAT_SCHEDULER": "beat_scheduler",
        "CELERYBEAT_SCHEDULE_FILENAME": "beat_schedule_filename",
        "CELERYBEAT_SYNC_EVERY": "beat_sync_every",
        "CELERYD_AGENT": "worker_agent",
        "CELERYD_AUTOSCALER": "worker_autoscaler",
        "CELERYD_CONCURRENCY": "worker_concurrency",
        "CELERYD_CONSUMER": "worker_consumer",
        "CELERYD_DETECT_QUORUM_QUEUES": "worker_detect_quorum_queues",
        "CELERYD_ENABLE_PREFETCH_COUNT_REDUCTION": (
            "worker_enable_prefetch_count_reduction"
        ),
        "CELERYD_ETA_TASK_LIMIT": "worker_eta_task_limit",
        "CELERYD_HIJACK_ROOT_LOGGER": "worker_hijack_root_logger",
        "CELERYD_LOG_COLOR": "worker_log_color",
        "CELERYD_LOG_FORMAT": "worker_log_format",
        "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
        "CELERYD_POOL": "worker_pool",
        "CELERYD_POOL_PUTLOCKS": "worker_pool_putlocks",
        "CELERYD_POOL_RESTARTS": "worker_pool_restarts",
        "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
        "CELERYD_REDIRECT_STDOUTS": "worker_redirect_stdouts",
        "CELERYD_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
        "CELERYD_SOFT_TIME_LIMIT": "task_soft_time_limit",
        "CELERYD_STATE_DB": "worker_state_db",
        "CELERYD_TASK_LOG_FORMAT": "worker_task_log_format",
        "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
        "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
        "CELERYD_TIME_LIMIT": "task_time_limit",
        "CELERYD_TIMER": "worker_timer",
        "CELERYD_TIMER_PRECISION": "worker_timer_precision",
        "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
        "S3_ACCESS_KEY_ID": "s3_access_key_id",
        "S3_BASE_PATH": "s3_base_path",
        "S3_BUCKET": "s3_bucket",
        "S3_ENDPOINT_URL": "s3_endpoint_url",
        "S3_REGION": "s3_region",
        "S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
    }
)

# Settings Celery documents that queue-meta does not (yet) implement: accepted,
# stored aside and logged once, so that a Celery configuration module loads.
_CELERY_UNSUPPORTED: frozenset[str] = frozenset(
    {
        "arangodb_backend_settings",
        "azureblockblob_base_path",
        "azureblockblob_connection_timeout",
        "azureblockblob_container_name",
        "azureblockblob_read_timeout",
        "azureblockblob_retry_increment_base",
        "azureblockblob_retry_initial_backoff_sec",
        "azureblockblob_retry_max_attempts",
        "beat_cron_starting_deadline",
        "beat_executable",
        "beat_gid",
        "beat_logfile",
        "beat_max_loop_interval",
        "beat_pidfile",
        "beat_schedule",
        "beat_schedule_filename",
        "beat_scheduler",
        "beat_sync_every",
        "beat_uid",
        "beat_umask",
        "broker_channel_error_retry",
        "broker_connection_retry_on_startup",
        "broker_failover_strategy",
        "broker_heartbeat_checkrate",
        "broker_login_method",
        "broker_native_delayed_delivery_queue_type",
        "broker_pool_limit",
        "broker_read_url",
        "broker_transport",
        "broker_use_ssl",
        "broker_write_url",
        "cache_backend",
        "cache_backend_options",
        "cassandra_auth_kwargs",
        "cassandra_auth_provider",
        "cassandra_entry_ttl",
        "cassandra_keyspace",
        "cassandra_options",
        "cassandra_port",
        "cassandra_read_consistency",
        "cassandra_secure_bundle_path",
        "cassandra_servers",
        "cassandra_table",
        "cassandra_write_consistency",
        "control_exchange",
        "control_queue_durable",
        "control_queue_exclusive",
        "control_queue_expires",
        "control_queue_ttl",
        "cosmosdbsql_collection_name",
        "cosmosdbsql_consistency_level",
        "cosmosdbsql_database_name",
        "cosmosdbsql_max_retry_attempts",
        "cosmosdbsql_max_retry_wait_time",
        "couchbase_backend_settings",
        "database_create_tables_at_setup",
        "database_engine_options",
        "database_short_lived_sessions",
        "database_table_names",
        "database_table_schemas",
        "dynamodb_endpoint_url",
        "elasticsearch_max_retries",
        "elasticsearch_retry_on_timeout",
        "elasticsearch_save_meta_as_text",
        "elasticsearch_timeout",
        "event_exchange",
        "event_queue_durable",
        "event_queue_exclusive",
        "event_queue_expires",
        "event_queue_prefix",
        "event_queue_ttl",
        "event_serializer",
        "events_executable",
        "events_gid",
        "events_logfile",
        "events_pidfile",
        "events_uid",
        "events_umask",
        "firestore_project",
        "gcs_base_path",
        "gcs_bucket",
        "gcs_project",
        "gcs_threadpool_maxsize",
        "gcs_ttl",
        "mongodb_backend_settings",
        "override_backends",
        "redis_backend_health_check_interval",
        "redis_backend_use_ssl",
        "redis_db",
        "redis_host",
        "redis_max_connections",
        "redis_password",
        "redis_port",
        "redis_retry_on_timeout",
        "redis_socket_connect_timeout",
        "redis_socket_keepalive",
        "redis_socket_timeout",
        "redis_username",
        "result_backend_always_retry",
        "result_backend_base_sleep_between_retries_ms",
        "result_backend_max_retries",
        "result_backend_max_sleep_between_retries_ms",
        "result_backend_thread_safe",
        "result_cache_max",
        "result_chord_join_timeout",
        "result_chord_retry_interval",
        "result_exchange",
        "result_exchange_type",
        "s3_access_key_id",
        "s3_base_path",
        "s3_bucket",
        "s3_endpoint_url",
        "s3_region",
        "s3_secret_access_key",
        "task_allow_error_cb_on_chord_header",
        "task_annotations",
        "task_args_repr_function",
        "task_create_missing_queue_exchange_type",
        "task_create_missing_queue_type",
        "task_default_delivery_mode",
        "task_default_queue_type",
        "task_inherit_parent_priority",
        "task_remote_tracebacks",
        "task_store_eager_result",
        "worker_agent",
        "worker_autoscaler",
        "worker_cancel_long_running_tasks_on_connection_loss",
        "worker_consumer",
        "worker_deduplicate_successful_tasks",
        "worker_detect_quorum_queues",
        "worker_direct",
        "worker_disable_prefetch",
        "worker_enable_prefetch_count_reduction",
        "worker_enable_remote_control",
        "worker_enable_soft_shutdown_on_idle",
        "worker_executable",
        "worker_gid",
        "worker_log_color",
        "worker_logfile",
        "worker_pidfile",
        "worker_pool_putlocks",
        "worker_pool_restarts",
        "worker_proc_alive_timeout",
        "worker_soft_shutdown_timeout",
        "worker_timer",
        "worker_uid",
        "worker_umask",
    }
)

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_SECRET_KEY = re.compile(r"pass|secret|token|credential|api_?key", re.IGNORECASE)
_RATE_LIMIT = re.compile(r"\d+(?:\.\d+)?(?:/[smh])?")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_MAX_SHOWN = 200


def _mask_url(text: str) -> str:
    return _URL_PASSWORD.sub(rf"\g<1>{_MASK}\g<3>", text)


def _mask(value: object) -> object:
    """Return *value* with URL passwords and password-like mapping entries masked."""
    if isinstance(value, str):
        return _mask_url(value)
    if isinstance(value, Mapping):
        return {
            key: (
                _MASK
                if isinstance(key, str) and _SECRET_KEY.search(key) and item is not None
                else _mask(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_mask(item) for item in value)
    return value


def _shown(value: object, *, secret: bool = False) -> str:
    """Return a masked, bounded repr of *value* for messages and reprs."""
    if secret and value is not None:
        return repr(_MASK)
    text = repr(_mask(value))
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def _with_article(description: str) -> str:
    if description.startswith("one of"):
        return description
    return ("an " if description[0] in "aeiou" else "a ") + description


def _closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """Return the candidate closest to *word*, comparing without case."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(word.lower(), by_lower, n=1, cutoff=cutoff)
    return by_lower[matches[0]] if matches else None


# --- value types --------------------------------------------------------------


class _Invalid(Exception):  # noqa: N818 - internal signal, never escapes this module
    """A value does not fit a setting's type; *reason* adds detail."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class _Unparsable(Exception):  # noqa: N818 - internal signal, never escapes this module
    """An environment variable's text cannot be read as the setting's kind."""


class _Type:
    """How the values of one setting are checked, normalized and read from text."""

    kind = "value"

    def __init__(self, description: str, *, nullable: bool = False) -> None:
        self.nullable = nullable
        self.description = f"{description} or None" if nullable else description

    def check(self, value: object) -> object:
        """Return *value* normalized, or raise :class:`_Invalid`."""
        if value is None:
            if self.nullable:
                return None
            raise _Invalid
        return self._check(value)

    def parse(self, text: str) -> object:
        """Return the Python value an environment variable's *text* stands for."""
        if self.nullable and not text.strip():
            return None
        return self._parse(text)

    def _check(self, value: object) -> object:
        raise NotImplementedError

    def _parse(self, text: str) -> object:
        return text


def _describe_range(base: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{base} from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{base} >= {minimum:g}"
    return base


class _Int(_Type):
    kind = "int"

    def __init__(
        self,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        choices: tuple[int, ...] = (),
        nullable: bool = False,
    ) -> None:
        if choices:
            description = "one of " + ", ".join(map(str, choices))
        else:
            description = _describe_range("int", minimum, maximum)
        super().__init__(description, nullable=nullable)
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices

    def _check(self, value: object) -> object:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid
        if self.choices and value not in self.choices:
            raise _Invalid
        if self.minimum is not None and value < self.minimum:
            raise _Invalid
        if self.maximum is not None and value > self.maximum:
            raise _Invalid
        return value

    def _parse(self, text: str) -> object:
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise _Unparsable from None


class _Duration(_Type):
    kind = "number of seconds"

    def __init__(
        self,
        *,
        positive: bool = False,
        zero_is_none: bool = False,
        nullable: bool = False,
    ) -> None:
        bound = "> 0" if positive else ">= 0"
        super().__init__(
            f"number of seconds {bound} (int, float or timedelta)", nullable=nullable
        )
        self.positive = positive
        self.zero_is_none = zero_is_none

    def _check(self, value: object) -> object:
        if isinstance(value, datetime.timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise _Invalid
        if not math.isfinite(seconds) or seconds < 0 or (self.positive and not seconds):
            raise _Invalid
        if self.zero_is_none and not seconds:
            return None
        return seconds

    def _parse(self, text: str) -> object:
        try:
            return float(text.strip())
        except ValueError:
            raise _Unparsable from None


class _Bool(_Type):
    kind = "bool (1/0, true/false, yes/no, on/off)"

    def __init__(self) -> None:
        super().__init__("bool")

    def _check(self, value: object) -> object:
        if not isinstance(value, bool):
            raise _Invalid
        return value

    def _parse(self, text: str) -> object:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Unparsable


class _Str(_Type):
    kind = "str"

    def __init__(
        self,
        *,
        choices: tuple[str, ...] = (),
        upper: bool = False,
        nullable: bool = False,
    ) -> None:
        if choices:
            description = "one of " + ", ".join(map(repr, choices))
        else:
            description = "non-empty str"
        super().__init__(description, nullable=nullable)
        self.choices = choices
        self.upper = upper

    def _check(self, value: object) -> object:
        if not isinstance(value, str) or not value:
            raise _Invalid
        if self.upper:
            value = value.upper()
        if self.choices and value not in self.choices:
            raise _Invalid
        return value


class _Path(_Type):
    kind = "path"

    def __init__(self) -> None:
        super().__init__("path (str or os.PathLike)", nullable=True)

    def _check(self, value: object) -> object:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            raise _Invalid
        return value


class _Password(_Type):
    kind = "str"

    def __init__(self) -> None:
        super().__init__("str or bytes", nullable=True)

    def _check(self, value: object) -> object:
        if not isinstance(value, (str, bytes)):
            raise _Invalid
        return value


class _Timezone(_Str):
    def __init__(self) -> None:
        super().__init__()
        self.description = "time zone name (e.g. 'UTC', 'Europe/Paris')"

    def _check(self, value: object) -> object:
        name = super()._check(value)
        if name == "UTC":
            return name
        try:
            zoneinfo.ZoneInfo(cast(str, name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise _Invalid("no such time zone in the time zone database") from None
        return name


def _json(text: str, expected: type | tuple[type, ...]) -> object:
    try:
        value = json.loads(text)
    except ValueError:
        raise _Unparsable from None
    if not isinstance(value, expected):
        raise _Unparsable
    return value


class _StrList(_Type):
    kind = "list (comma-separated or JSON)"

    def __init__(self, *, nullable: bool = False) -> None:
        super().__init__("list of str", nullable=nullable)

    def _check(self, value: object) -> object:
        if isinstance(value, (set, frozenset)):
            items = sorted(value, key=str)
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise _Invalid
        if not all(isinstance(item, str) for item in items):
            raise _Invalid
        return items

    def _parse(self, text: str) -> object:
        if text.lstrip().startswith("["):
            return _json(text, list)
        return [item.strip() for item in text.split(",") if item.strip()]


class _Dict(_Type):
    kind = "JSON object"

    def __init__(self) -> None:
        super().__init__("dict with str keys")

    def _check(self, value: object) -> object:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Invalid
        return dict(value)

    def _parse(self, text: str) -> object:
        return _json(text, dict)


class _RateLimit(_Type):
    kind = "rate limit"

    def __init__(self) -> None:
        super().__init__(
            "rate limit: tasks per second as a number, or '10/s', '10/m', '10/h'",
            nullable=True,
        )

    def _check(self, value: object) -> object:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                raise _Invalid
            # Plain decimal notation: str(1e-05) would not parse as a rate.
            return format(decimal.Decimal(repr(value)), "f")
        if isinstance(value, str) and _RATE_LIMIT.fullmatch(value.replace(" ", "")):
            return value.replace(" ", "")
        raise _Invalid


class _RetryPolicy(_Type):
    kind = "JSON object"
    keys = ("max_retries", "interval_start", "interval_step", "interval_max")
    # Celery 5.3 added retry_errors (exception classes to retry on).
    optional_keys = ("retry_errors",)

    def __init__(self, default: Mapping[str, object]) -> None:
        super().__init__("dict with keys " + ", ".join(self.keys))
        self.default = dict(default)

    def _check(self, value: object) -> object:
        if not isinstance(value, Mapping):
            raise _Invalid
        policy = dict(self.default)
        for key, item in value.items():
            if key not in self.keys and key not in self.optional_keys:
                suggestion = _closest(str(key), self.keys + self.optional_keys)
                hint = f"; did you mean {suggestion!r}?" if suggestion else ""
                raise _Invalid(f"unknown key {key!r}{hint}")
            if key == "max_retries":
                ok = item is None or (isinstance(item, int) and item >= 0)
                ok = ok and not isinstance(item, bool)
            elif key == "retry_errors":
                ok = item is None or (
                    isinstance(item, tuple)
                    and all(
                        isinstance(e, type) and issubclass(e, BaseException)
                        for e in item
                    )
                )
            else:
                ok = (
                    isinstance(item, (int, float))
                    and not isinstance(item, bool)
                    and math.isfinite(item)
                    and item >= 0
                )
            if not ok:
                raise _Invalid(f"bad value for {key!r}: {_shown(item)}")
            policy[key] = item
        return policy

    def _parse(self, text: str) -> object:
        return _json(text, dict)


class _Routes(_Type):
    kind = "JSON object or array"

    def __init__(self) -> None:
        super().__init__("dict, list or callable", nullable=True)

    def _check(self, value: object) -> object:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, (list, tuple)):
            return list(value)
        if callable(value):
            return value
        raise _Invalid

    def _parse(self, text: str) -> object:
        return _json(text, (dict, list))


#: The options a ``task_queues`` entry may have besides ``name``.
QUEUE_OPTIONS = (
    "name", "exchange", "exchange_type", "routing_key", "bindings", "max_priority",
    "message_ttl", "expires", "durable", "auto_delete", "queue_arguments",
)  # fmt: skip


class _Queues(_Type):
    kind = "list (comma-separated or JSON)"

    def __init__(self) -> None:
        super().__init__(
            "list of queue names or dicts with a 'name' key", nullable=True
        )

    def _check(self, value: object) -> object:
        if isinstance(value, Mapping):
            # Celery's mapping form: {queue name: {option: value}}.
            items: list[object] = []
            for name, options in value.items():
                if not isinstance(options, Mapping):
                    raise _Invalid(f"options of queue {name!r} must be a dict")
                items.append({"name": name, **options})
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise _Invalid
        queues: list[object] = []
        for item in items:
            if isinstance(item, str) and item:
                queues.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                unknown = sorted(set(item) - set(QUEUE_OPTIONS))
                if unknown:
                    suggestion = _closest(str(unknown[0]), QUEUE_OPTIONS)
                    hint = f"; did you mean {suggestion!r}?" if suggestion else ""
                    raise _Invalid(
                        f"queue {item['name']!r} has unknown option "
                        f"{unknown[0]!r}{hint}"
                    )
                queues.append(dict(item))
            else:
                raise _Invalid(f"bad queue {_shown(item)}")
        return queues

    def _parse(self, text: str) -> object:
        if text.lstrip().startswith(("{", "[")):
            return _json(text, (dict, list))
        return [item.strip() for item in text.split(",") if item.strip()]


# --- the registry -------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """The description of one setting, as listed in :data:`SETTINGS`.

    Attributes:
        name: The canonical name (Celery's lowercase name where Celery has one).
        type_description: The accepted values, as error messages state them.
        default: The default value; treat it as read-only.
        doc: What the setting does.
        env_var: The environment variable read for it: ``QUEUE_`` + the
            upper-case name (``QUEUE_HOME`` for ``queue_home``).
        aliases: Other accepted names: ``broker``/``backend`` style aliases and
            Celery's old upper-case names.
        secret: Whether its value is masked in reprs, messages and
            :meth:`Settings.as_dict`.
    """

    name: str
    type_description: str
    default: Any
    doc: str
    env_var: str
    aliases: tuple[str, ...] = ()
    secret: bool = False


class _Field(Generic[T]):
    """A setting declared on :class:`Settings`: typed attribute and registry entry."""

    def __init__(
        self,
        type_: _Type,
        default: T,
        doc: str,
        *,
        aliases: tuple[str, ...] = (),
        secret: bool = False,
        env_var: str | None = None,
    ) -> None:
        self.type = type_
        self.default = default
        self.doc = doc
        self.aliases = aliases
        self.secret = secret
        self.env_var = env_var
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name
        old_names = sorted(
            old
            for old, new in _CELERY_OLD_NAMES.items()
            if new in (name, *self.aliases)
        )
        self.setting = Setting(
            name=name,
            type_description=self.type.description,
            default=self.default,
            doc=self.doc,
            env_var=self.env_var or _ENV_PREFIX + name.upper(),
            aliases=(*self.aliases, *old_names),
            secret=self.secret,
        )

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Setting: ...

    @overload
    def __get__(self, obj: Settings, owner: type[Any]) -> T: ...

    def __get__(self, obj: Settings | None, owner: type[Any]) -> Setting | T:
        if obj is None:
            return self.setting
        return cast(T, obj._values[self.name])

    def __set__(self, obj: Settings, value: object) -> None:
        obj[self.name] = value


_Routing: TypeAlias = "dict[Any, Any] | list[Any] | Callable[..., Any] | None"
_RETRY_POLICY_DEFAULT: dict[str, Any] = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
_WORKER_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
_WORKER_TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] "
    "%(task_name)s[%(task_id)s]: %(message)s"
)


class Settings:
    """The validated settings of one app; every setting is a typed attribute.

    Args:
        values: Settings to apply over the defaults and the environment, by
            canonical name, alias or Celery's old upper-case name.
        environ: Where ``QUEUE_*`` variables are read from (usually
            :data:`os.environ`); ``None`` reads no environment. Values in
            *values* win over the environment. From the environment, ints,
            floats and bools (``1/0``, ``true/false``, ``yes/no``, ``on/off``)
            are parsed, lists are comma-separated or JSON, dicts are JSON, and an
            empty value means ``None`` where ``None`` is allowed.

    Raises:
        ConfigurationError: A name is unknown, or a value (or an environment
            variable) does not fit its setting.

    Example:
        >>> conf = Settings({"broker_url": "redis://localhost/0"})
        >>> conf.update(task_acks_late=False, worker_prefetch_multiplier=4)
        >>> conf.worker_prefetch_multiplier
        4

    Containers returned by attribute access are the stored ones: assign a new
    list or dict rather than mutating it, so that the value is validated.
    """

    # -- broker
    broker_url: _Field[str | None] = _Field(
        _Str(nullable=True),
        None,
        "URL of the broker. None: the embedded default broker, chosen by the app.",
        aliases=("broker",),
    )
    broker_transport_options: _Field[dict[str, Any]] = _Field(
        _Dict(), {}, "Extra options passed to the transport (e.g. visibility_timeout)."
    )
    broker_connection_retry: _Field[bool] = _Field(
        _Bool(), True, "Reconnect to the broker when the connection is lost."
    )
    broker_connection_max_retries: _Field[int | None] = _Field(
        _Int(minimum=0, nullable=True),
        100,
        "Reconnection attempts before giving up; None: retry forever.",
    )
    broker_connection_timeout: _Field[float] = _Field(
        _Duration(positive=True),
        4.0,
        "Seconds to wait for a connection to the broker to be established.",
    )
    broker_heartbeat: _Field[float | None] = _Field(
        _Duration(nullable=True),
        60.0,
        "Heartbeat interval in seconds, where the transport has heartbeats; "
        "None or 0: no heartbeats.",
    )

    # -- results
    result_backend: _Field[str | None] = _Field(
        _Str(nullable=True),
        None,
        "URL of the result store. None: the embedded default, chosen by the app.",
        aliases=("backend",),
    )
    result_backend_transport_options: _Field[dict[str, Any]] = _Field(
        _Dict(), {}, "Extra options passed to the result store."
    )
    result_serializer: _Field[str] = _Field(
        _Str(), "json", "Codec used to store results (a msgwire codec name)."
    )
    result_accept_content: _Field[list[str] | None] = _Field(
        _StrList(nullable=True),
        None,
        "Codecs or content types accepted when reading results; "
        "None: the same as accept_content.",
    )
    result_compression: _Field[str | None] = _Field(
        _Str(nullable=True), None, "Compression for stored results; None: none."
    )
    result_expires: _Field[float | None] = _Field(
        _Duration(zero_is_none=True, nullable=True),
        86400.0,
        "Seconds after which stored results expire (default: one day); "
        "None or 0: never.",
    )
    result_extended: _Field[bool] = _Field(
        _Bool(),
        False,
        "Also store the task name, arguments, worker, retries and queue.",
    )
    result_persistent: _Field[bool] = _Field(
        _Bool(),
        True,
        "Result messages survive a broker restart (message-based stores).",
    )
    result_exception_modules: _Field[list[str]] = _Field(
        _StrList(),
        [],
        "Modules whose exception classes are rebuilt when a failed result is "
        "read; other exceptions come back as a generic error.",
    )

    # -- messages
    task_serializer: _Field[str] = _Field(
        _Str(), "json", "Codec used to send task messages (a msgwire codec name)."
    )
    accept_content: _Field[list[str]] = _Field(
        _StrList(),
        ["json"],
        "Codecs or content types a worker accepts; anything else is rejected. "
        "Only JSON by default: never add pickle unless every sender is trusted.",
    )
    task_compression: _Field[str | None] = _Field(
        _Str(nullable=True), None, "Compression for task messages; None: none."
    )
    task_protocol: _Field[int] = _Field(
        _Int(choices=(1, 2)), 2, "Task message protocol version (Celery's 1 or 2)."
    )

    # -- routing
    task_default_queue: _Field[str] = _Field(
        _Str(), "celery", "Queue for tasks that have no route."
    )
    task_default_exchange: _Field[str | None] = _Field(
        _Str(nullable=True),
        None,
        "Exchange for tasks that have no route; None: named like the queue.",
    )
    task_default_exchange_type: _Field[str] = _Field(
        _Str(choices=("direct", "topic", "fanout")),
        "direct",
        "Type of the default exchange.",
    )
    task_default_routing_key: _Field[str | None] = _Field(
        _Str(nullable=True),
        None,
        "Routing key for tasks that have no route; None: the queue's name.",
    )
    task_default_priority: _Field[int | None] = _Field(
        _Int(minimum=0, maximum=9, nullable=True),
        None,
        "Priority of tasks that set none; None: the broker's default.",
    )
    task_queue_max_priority: _Field[int | None] = _Field(
        _Int(minimum=0, maximum=255, nullable=True),
        None,
        "Highest priority of declared queues (x-max-priority); None: no priorities.",
    )
    task_routes: _Field[_Routing] = _Field(
        _Routes(),
        None,
        "Routers consulted in order: a dict of task name (or glob) to route, a "
        "list of routers, or a router function.",
    )
    task_create_missing_queues: _Field[bool] = _Field(
        _Bool(), True, "Declare queues that routes name but task_queues does not."
    )
    task_queues: _Field[list[str | dict[str, Any]] | None] = _Field(
        _Queues(),
        None,
        "Queues a worker consumes from, as names or dicts with a 'name' key and "
        "optional 'exchange', 'exchange_type' (direct, topic, fanout), "
        "'routing_key' (the binding key), 'bindings' (a list of {'exchange', "
        "'routing_key'}), 'max_priority', 'message_ttl', 'expires', 'durable' "
        "(Celery's {name: options} mapping is accepted); None: the default queue.",
    )
    task_dead_letter_queue: _Field[str | None] = _Field(
        _Str(nullable=True),
        "{queue}.dead",
        "Where the worker moves messages it rejects (undecodable, unknown task, "
        "failed verification, disallowed content type), with the reason in the "
        "x-death-reason header; '{queue}' is the queue they came from. None: "
        "drop them (the log says so).",
    )

    # -- execution
    task_acks_late: _Field[bool] = _Field(
        _Bool(),
        True,
        "Acknowledge a message after its task ran, not before: at-least-once "
        "delivery (Celery's default is False).",
    )
    task_acks_on_failure_or_timeout: _Field[bool] = _Field(
        _Bool(),
        True,
        "With late acks, also acknowledge tasks that failed or timed out.",
    )
    task_reject_on_worker_lost: _Field[bool] = _Field(
        _Bool(),
        False,
        "With late acks, requeue a task whose worker process died, instead of "
        "acknowledging it; task_delivery_limit ends the loop of a task that "
        "kills its process every time.",
    )
    task_delivery_limit: _Field[int | None] = _Field(
        _Int(minimum=1, nullable=True),
        5,
        "A message delivered this many times without finishing (its worker or "
        "pool process died each time) goes to the dead-letter queue with the "
        "reason instead of running again. None: no limit.",
    )
    task_track_started: _Field[bool] = _Field(
        _Bool(), False, "Record the STARTED state when a worker begins a task."
    )
    task_ignore_result: _Field[bool] = _Field(
        _Bool(), False, "Do not store return values."
    )
    task_store_errors_even_if_ignored: _Field[bool] = _Field(
        _Bool(), False, "Store failures even for tasks that ignore results."
    )
    task_time_limit: _Field[float | None] = _Field(
        _Duration(positive=True, nullable=True),
        None,
        "Hard time limit in seconds: the process running the task is killed.",
    )
    task_soft_time_limit: _Field[float | None] = _Field(
        _Duration(positive=True, nullable=True),
        None,
        "Soft time limit in seconds: SoftTimeLimitExceeded is raised in the task.",
    )
    task_default_rate_limit: _Field[str | None] = _Field(
        _RateLimit(),
        None,
        "Rate limit of tasks that set none, per worker ('10/s', '100/m', '5/h', "
        "or a number per second); None: unlimited.",
    )
    task_max_retries: _Field[int | None] = _Field(
        _Int(minimum=0, nullable=True),
        3,
        "Default max_retries of tasks (self.retry); None: retry forever.",
    )
    task_default_retry_delay: _Field[float] = _Field(
        _Duration(), 180.0, "Default countdown of self.retry(), in seconds."
    )
    task_always_eager: _Field[bool] = _Field(
        _Bool(),
        False,
        "Run tasks in the calling process instead of sending them (tests only).",
    )
    task_eager_propagates: _Field[bool] = _Field(
        _Bool(), True, "Eagerly run tasks re-raise their exceptions."
    )
    task_publish_retry: _Field[bool] = _Field(
        _Bool(), True, "Retry sending a task message when the broker connection fails."
    )
    task_publish_retry_policy: _Field[dict[str, Any]] = _Field(
        _RetryPolicy(_RETRY_POLICY_DEFAULT),
        dict(_RETRY_POLICY_DEFAULT),
        "How sending is retried: max_retries, interval_start, interval_step and "
        "interval_max (seconds); missing keys keep their defaults.",
    )
    task_send_sent_event: _Field[bool] = _Field(
        _Bool(), False, "Send a task-sent event for every task sent."
    )

    # -- worker
    worker_concurrency: _Field[int | None] = _Field(
        _Int(minimum=1, nullable=True),
        None,
        "Processes or threads running tasks; None: the number of CPUs.",
    )
    worker_prefetch_multiplier: _Field[int] = _Field(
        _Int(minimum=0),
        1,
        "Messages reserved per process. 1 gives fair dispatch (Celery's default "
        "is 4); 0 means no limit, as in Celery.",
    )
    worker_pool: _Field[str] = _Field(
        _Str(),
        "prefork",
        "Pool implementation: prefork, threads, eventlet, gevent, solo, or "
        "another installed pools plugin.",
    )
    worker_max_tasks_per_child: _Field[int | None] = _Field(
        _Int(minimum=1, nullable=True),
        None,
        "Tasks a pool process runs before it is replaced; None: no limit.",
    )
    worker_max_memory_per_child: _Field[int | None] = _Field(
        _Int(minimum=1, nullable=True),
        None,
        "Resident memory in KiB above which a pool process is replaced after its "
        "current task; None: no limit.",
    )
    worker_state_db: _Field[str | None] = _Field(
        _Path(), None, "File keeping worker state (revoked tasks) across restarts."
    )
    worker_hostname: _Field[str | None] = _Field(
        _Str(nullable=True), None, "Node name of the worker; None: name@host."
    )
    worker_eta_limit: _Field[int] = _Field(
        _Int(minimum=1),
        1000,
        "Most ETA/countdown tasks a worker holds in memory, unacknowledged; "
        "further ones are parked broker-side until they are nearly due.",
        aliases=("worker_eta_task_limit",),
    )
    worker_eta_horizon: _Field[float] = _Field(
        _Duration(positive=True),
        10.0,
        "A worker holds an ETA/countdown task itself only when it is due within "
        "this many seconds; later ones are parked broker-side (Redis sorted set, "
        "SQL visible-at, AMQP delay queues) and come back shortly before they "
        "are due. Keep it well under RabbitMQ's consumer_timeout.",
    )
    worker_heartbeat_file: _Field[str | None] = _Field(
        _Path(),
        None,
        "Liveness probe: the worker rewrites this JSON file (time, pid, hostname, "
        "counters) every second while its consume loop runs; `queue status "
        "--local` checks it. None: no file.",
    )
    worker_disable_rate_limits: _Field[bool] = _Field(
        _Bool(), False, "Ignore all rate limits."
    )
    worker_send_task_events: _Field[bool] = _Field(
        _Bool(), False, "Send task events for monitoring."
    )
    worker_lost_wait: _Field[float] = _Field(
        _Duration(),
        10.0,
        "Seconds to wait for the result of a task whose process died before "
        "failing it with WorkerLostError.",
    )
    worker_log_format: _Field[str] = _Field(
        _Str(), _WORKER_LOG_FORMAT, "The logging format of worker messages."
    )
    worker_task_log_format: _Field[str] = _Field(
        _Str(),
        _WORKER_TASK_LOG_FORMAT,
        "The logging format of messages logged in tasks (with task_name, task_id).",
    )
    worker_redirect_stdouts: _Field[bool] = _Field(
        _Bool(), True, "Redirect stdout and stderr of tasks to the log."
    )
    worker_redirect_stdouts_level: _Field[str] = _Field(
        _Str(choices=_LOG_LEVELS, upper=True),
        "WARNING",
        "Log level of redirected output.",
    )
    worker_hijack_root_logger: _Field[bool] = _Field(
        _Bool(), True, "The worker replaces the root logger's handlers with its own."
    )
    worker_timer_precision: _Field[float] = _Field(
        _Duration(positive=True),
        1.0,
        "Longest sleep, in seconds, of the ETA scheduler between checks.",
    )

    # -- time
    timezone: _Field[str] = _Field(
        _Timezone(), "UTC", "Time zone for ETAs and schedules (an IANA name)."
    )
    enable_utc: _Field[bool] = _Field(_Bool(), True, "Dates in messages are in UTC.")

    # -- modules
    imports: _Field[list[str]] = _Field(
        _StrList(), [], "Modules a worker imports at start (task modules)."
    )
    include: _Field[list[str]] = _Field(
        _StrList(), [], "More modules to import, after imports."
    )

    # -- security
    security_key: _Field[str | None] = _Field(
        _Path(), None, "Private key file used to sign messages."
    )
    security_key_password: _Field[str | bytes | None] = _Field(
        _Password(), None, "Password of the private key; never shown.", secret=True
    )
    security_certificate: _Field[str | None] = _Field(
        _Path(), None, "X.509 certificate file used to sign messages."
    )
    security_cert_store: _Field[str | None] = _Field(
        _Path(),
        None,
        "Directory (or glob) of the X.509 certificates trusted to verify messages.",
    )
    security_digest: _Field[str] = _Field(
        _Str(), "sha256", "Digest used to sign messages."
    )
    signing_format: _Field[str] = _Field(
        _Str(choices=("auth", "native")),
        "auth",
        "Signed message format: 'auth' (Celery-compatible) or 'native'.",
    )
    signing_max_age: _Field[float | None] = _Field(
        _Duration(positive=True, nullable=True),
        3600.0,
        "Native signing format: messages signed longer ago than this many seconds "
        "(counted from the eta of delayed tasks) are rejected as replays; raise it "
        "when queues may hold a longer backlog; None: no limit.",
    )

    # -- queue-meta
    queue_home: _Field[str | None] = _Field(
        _Path(),
        None,
        "Base directory of the embedded default broker and result store; "
        "None: the user's data directory, chosen by the app.",
        env_var="QUEUE_HOME",
    )

    # Instance state, set through object.__setattr__ (see __setattr__).
    _values: dict[str, Any]
    _changed: dict[str, None]
    _ignored: dict[str, object]
    _warned: set[str]

    def __init__(
        self,
        values: Mapping[str, object] | None = None,
        /,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        object.__setattr__(
            self,
            "_values",
            {name: copy.deepcopy(field.default) for name, field in _FIELDS.items()},
        )
        object.__setattr__(self, "_changed", {})
        object.__setattr__(self, "_ignored", {})
        object.__setattr__(self, "_warned", set())
        accepted, ignored = _prepare(_items(values, {}), source=None)
        if environ is not None:
            self._commit(_read_environ(environ, skip=accepted.keys()), {})
        self._commit(accepted, ignored)

    # -- changing settings

    def update(
        self, values: Mapping[str, object] | None = None, /, **kwargs: object
    ) -> None:
        """Apply several settings at once, all or nothing.

        Args:
            values: Settings by canonical name, alias or Celery's old name.
            **kwargs: More settings; they win over *values*.

        Raises:
            ConfigurationError: A name is unknown or a value does not fit; no
                setting was changed.
        """
        self._commit(*_prepare(_items(values, kwargs), source=None))

    def setdefault(self, name: str, value: object) -> Any:
        """Set *name* to *value* unless it was set explicitly; return its value.

        The value is validated either way.

        Raises:
            ConfigurationError: The name is unknown or the value does not fit.
        """
        accepted, ignored = _prepare([(name, value)], source=None)
        if accepted:
            (canonical,) = accepted
            if canonical not in self._changed:
                self._commit(accepted, {})
            return self._values[canonical]
        (unsupported,) = ignored
        if unsupported not in self._ignored:
            self._commit({}, ignored)
        return self._ignored[unsupported]

    def from_object(self, obj: object) -> None:
        """Apply the settings found on a module, class or object, all or nothing.

        Public lowercase attributes are read, except modules, classes and
        functions not named like a setting (so ``import os`` or a helper
        function in a configuration module are skipped, while a router function
        assigned to ``task_routes`` is not). Celery's old upper-case names
        (``BROKER_URL``, ``CELERY_RESULT_BACKEND``, ...) are read too; other
        upper-case attributes are skipped. A mapping is read by its items.

        Args:
            obj: The object, or the name of a module to import: ``"proj.config"``,
                or ``"proj.config:Config"`` for an attribute of a module.

        Raises:
            ImportError: The module, or its attribute, cannot be imported
                (``App.config_from_object(silent=True)`` ignores this).
            ConfigurationError: A name is unknown or a value does not fit; no
                setting was changed.
        """
        source: str
        if isinstance(obj, str):
            source = obj
            obj = _import_object(obj)
        else:
            source = getattr(obj, "__name__", type(obj).__name__)
        if isinstance(obj, Mapping):
            items = list(obj.items())
        else:
            items = [
                (name, getattr(obj, name))
                for name in dir(obj)
                if _is_config_attribute(obj, name)
            ]
        self._commit(*_prepare(items, source=source))

    def _commit(
        self, accepted: Mapping[str, object], ignored: Mapping[str, tuple[str, object]]
    ) -> None:
        self._values.update(accepted)
        self._changed.update(dict.fromkeys(accepted))
        for name, (key, value) in ignored.items():
            self._ignored[name] = value
            if name not in self._warned:
                self._warned.add(name)
                logger.warning(
                    "celery setting %r is not supported by queue-meta and is ignored",
                    key,
                )

    # -- reading settings

    def changed(self) -> frozenset[str]:
        """Return the names of the settings set explicitly or by the environment."""
        return frozenset(self._changed)

    def ignored(self) -> dict[str, object]:
        """Return the Celery settings that were given but are not supported."""
        return dict(self._ignored)

    def as_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """Return every setting by canonical name.

        Containers are copies. Secret settings (``security_key_password``) are
        replaced by ``"****"`` when set, unless *reveal_secrets* is true.
        """
        result: dict[str, Any] = {}
        for name, value in self._values.items():
            if _FIELDS[name].secret and value is not None and not reveal_secrets:
                result[name] = _MASK
            elif isinstance(value, (dict, list)):
                result[name] = copy.copy(value)
            else:
                result[name] = value
        return result

    def describe(self) -> str:
        """Return a text listing of every setting: type, value, default, environment.

        Secrets and URL passwords are masked.
        """
        blocks: list[str] = []
        for name, field in _FIELDS.items():
            setting = field.setting
            value = _shown(self._values[name], secret=setting.secret)
            line = f"{name} = {value}"
            if name in self._changed:
                line += f"  (default: {_shown(setting.default)})"
            extra = f"{setting.type_description}; env {setting.env_var}"
            if setting.aliases:
                extra += "; also " + ", ".join(setting.aliases)
            blocks.append(f"{line}\n    [{extra}]\n    {setting.doc}")
        return "\n".join(blocks)

    # -- mapping-style access

    def __getitem__(self, name: str) -> Any:
        resolved = _resolve(name)
        if resolved is None:
            raise ConfigurationError(_unknown_message(name))
        canonical, supported = resolved
        if not supported:
            raise ConfigurationError(
                f"celery setting {name!r} is not supported by queue-meta"
            )
        return self._values[canonical]

    def __setitem__(self, name: str, value: object) -> None:
        self._commit(*_prepare([(name, value)], source=None))

    def __setattr__(self, name: str, value: object) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        resolved = _resolve(name)
        return resolved is not None and resolved[1]

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name!r}: {_shown(self._values[name], secret=_FIELDS[name].secret)}"
            for name in _FIELDS
            if name in self._changed
        )
        return f"{type(self).__name__}({{{shown}}})"


_FIELDS: Mapping[str, _Field[Any]] = MappingProxyType(
    {
        field.name: field
        for field in vars(Settings).values()
        if isinstance(field, _Field)
    }
)

SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {name: field.setting for name, field in _FIELDS.items()}
)
"""Every setting by canonical name, in documentation order."""

_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: field.name for field in _FIELDS.values() for alias in field.aliases}
)


# --- resolving names and values -------------------------------------------------


def _resolve(key: str) -> tuple[str, bool] | None:
    """Return (canonical name, supported) for *key*, or None if it is unknown."""
    key = _CELERY_OLD_NAMES.get(key, key)
    if key in _FIELDS:
        return key, True
    if key in _ALIASES:
        return _ALIASES[key], True
    if key in _CELERY_UNSUPPORTED:
        return key, False
    return None


def _unknown_message(key: str) -> str:
    candidates = [*_CELERY_UNSUPPORTED, *_ALIASES, *_FIELDS]
    if key != key.lower():
        candidates[:0] = _CELERY_OLD_NAMES
    suggestion = _closest(key, candidates)
    if suggestion is not None:
        return f"unknown setting {key!r}; did you mean {suggestion!r}?"
    return (
        f"unknown setting {key!r}; the valid names are listed in "
        "queue_meta.config.SETTINGS"
    )


def _type_message(field: _Field[Any], value: object, exc: _Invalid) -> str:
    message = (
        f"setting {field.name!r} must be {_with_article(field.type.description)}, "
        f"got {_shown(value, secret=field.secret)} ({type(value).__name__})"
    )
    return f"{message}: {exc.reason}" if exc.reason else message


def _items(
    values: Mapping[str, object] | None, kwargs: Mapping[str, object]
) -> list[tuple[object, object]]:
    if values is not None and not isinstance(values, Mapping):
        raise ConfigurationError(
            f"settings must be given as a mapping, got {type(values).__name__}"
        )
    return [*(values or {}).items(), *kwargs.items()]


def _prepare(
    items: Iterable[tuple[object, object]], source: str | None
) -> tuple[dict[str, object], dict[str, tuple[str, object]]]:
    """Resolve and validate *items*; raise one error listing every problem.

    Returns:
        The accepted values by canonical name, and the unsupported Celery
        settings by name, with the key they were given under.
    """
    accepted: dict[str, object] = {}
    given_as: dict[str, str] = {}
    ignored: dict[str, tuple[str, object]] = {}
    errors: list[str] = []
    for key, value in items:
        if not isinstance(key, str):
            errors.append(f"setting names are str, got {key!r} ({type(key).__name__})")
            continue
        resolved = _resolve(key)
        if resolved is None:
            errors.append(_unknown_message(key))
            continue
        name, supported = resolved
        if not supported:
            ignored[name] = (key, value)
            continue
        field = _FIELDS[name]
        try:
            checked = field.type.check(value)
        except _Invalid as exc:
            errors.append(_type_message(field, value, exc))
            continue
        if name in accepted and given_as[name] != key and accepted[name] != checked:
            errors.append(
                f"{given_as[name]!r} and {key!r} both set {name!r}, to different "
                "values; keep one"
            )
            continue
        accepted[name] = checked
        given_as[name] = key
    if errors:
        prefix = f"in {source!r}: " if source else ""
        if len(errors) == 1:
            raise ConfigurationError(prefix + errors[0])
        listing = "".join(f"\n  - {error}" for error in errors)
        raise ConfigurationError(f"{prefix}{len(errors)} invalid settings:{listing}")
    return accepted, ignored


def _read_environ(environ: Mapping[str, str], skip: Iterable[str]) -> dict[str, object]:
    """Return the settings given by ``QUEUE_*`` variables, except those in *skip*."""
    skipped = set(skip)
    accepted: dict[str, object] = {}
    errors: list[str] = []
    for name, field in _FIELDS.items():
        var = field.setting.env_var
        text = environ.get(var)
        if text is None or name in skipped:
            continue
        shown = _MASK if field.secret else _mask_url(text)
        if len(shown) > _MAX_SHOWN:
            shown = shown[: _MAX_SHOWN - 3] + "..."
        try:
            parsed = field.type.parse(text)
        except _Unparsable:
            errors.append(
                f"environment variable {var}={shown!r} is not a valid "
                f"{field.type.kind} for setting {name!r}"
            )
            continue
        try:
            accepted[name] = field.type.check(parsed)
        except _Invalid as exc:
            reason = f": {exc.reason}" if exc.reason else ""
            errors.append(
                f"environment variable {var}={shown!r} is not valid for setting "
                f"{name!r}, which must be {_with_article(field.type.description)}"
                f"{reason}"
            )
    if errors:
        if len(errors) == 1:
            raise ConfigurationError(errors[0])
        listing = "".join(f"\n  - {error}" for error in errors)
        raise ConfigurationError(
            f"{len(errors)} invalid environment variables:{listing}"
        )
    env_vars = [field.setting.env_var for field in _FIELDS.values()]
    for var in environ:
        if var.startswith(_ENV_PREFIX) and var not in env_vars:
            suggestion = _closest(var, env_vars, cutoff=0.85)
            if suggestion is not None:
                logger.warning(
                    "environment variable %s is not a queue-meta setting and is "
                    "ignored; did you mean %s?",
                    var,
                    suggestion,
                )
    return accepted


def _import_object(spec: str) -> object:
    """Import ``"module"`` or ``"module:attribute"``; failures raise ImportError."""
    module_name, _, attribute = spec.partition(":")
    obj: object = importlib.import_module(module_name)
    if attribute:
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            raise ImportError(
                f"configuration module {module_name!r} has no attribute {attribute!r}",
                name=module_name,
            ) from None
    return obj


def _is_config_attribute(obj: object, name: str) -> bool:
    if name.startswith("_"):
        return False
    if name != name.lower():
        return name in _CELERY_OLD_NAMES
    value = inspect.getattr_static(obj, name, None)
    if isinstance(value, (staticmethod, classmethod)) or inspect.ismodule(value):
        return False
    if inspect.isclass(value) or inspect.isroutine(value):
        return _resolve(name) is not None
    return True
