from __future__ import annotations

import logging
import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from queue_meta import QueueMetaError, config
from queue_meta.config import SETTINGS, ConfigurationError, Setting, Settings


def unsupported_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "queue_meta.config" and "not supported" in record.getMessage()
    ]


class TestDefaults:
    def test_safe_defaults(self) -> None:
        conf = Settings()
        assert conf.accept_content == ["json"]
        assert conf.task_serializer == "json"
        assert conf.result_serializer == "json"
        assert conf.worker_prefetch_multiplier == 1
        assert conf.result_expires == 86400.0
        assert conf.task_acks_late is True
        assert conf.broker_url is None
        assert conf.result_backend is None
        assert conf.task_publish_retry_policy == {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        }

    def test_nothing_is_changed_and_as_dict_holds_every_default(self) -> None:
        conf = Settings()
        assert conf.changed() == frozenset()
        assert conf.as_dict() == {name: s.default for name, s in SETTINGS.items()}
        assert list(conf) == list(SETTINGS)
        assert len(conf) == len(SETTINGS)

    def test_instances_do_not_share_mutable_defaults(self) -> None:
        first, second = Settings(), Settings()
        first.accept_content.append("msgpack")
        first.broker_transport_options["visibility_timeout"] = 10
        assert second.accept_content == ["json"]
        assert second.broker_transport_options == {}
        assert SETTINGS["accept_content"].default == ["json"]

    def test_class_attribute_is_the_registry_entry(self) -> None:
        assert Settings.broker_url is SETTINGS["broker_url"]
        assert isinstance(Settings.task_acks_late, Setting)


class TestRegistry:
    @pytest.mark.parametrize("name", list(SETTINGS))
    def test_every_default_passes_its_own_validation(self, name: str) -> None:
        conf = Settings()
        conf[name] = SETTINGS[name].default
        assert conf[name] == SETTINGS[name].default

    def test_env_vars_are_the_prefixed_upper_case_name(self) -> None:
        for name, setting in SETTINGS.items():
            assert setting.name == name
            if name != "queue_home":
                assert setting.env_var == "QUEUE_" + name.upper()
        assert SETTINGS["queue_home"].env_var == "QUEUE_HOME"

    def test_names_are_unambiguous(self) -> None:
        aliases = [alias for s in SETTINGS.values() for alias in s.aliases]
        assert len(aliases) == len(set(aliases))
        assert not set(aliases) & set(SETTINGS)
        supported = set(SETTINGS) | {a for a in aliases if a.islower()}
        assert not supported & config._CELERY_UNSUPPORTED

    def test_every_old_celery_name_leads_somewhere(self) -> None:
        for old, new in config._CELERY_OLD_NAMES.items():
            assert old.isupper()
            assert (
                new in SETTINGS
                or new in config._ALIASES
                or (new in config._CELERY_UNSUPPORTED)
            ), old

    def test_only_the_key_password_is_secret(self) -> None:
        assert [s.name for s in SETTINGS.values() if s.secret] == [
            "security_key_password"
        ]


class TestValues:
    def test_typed_attribute_access_and_assignment(self) -> None:
        conf = Settings()
        conf.worker_concurrency = 8
        conf.task_default_queue = "high"
        assert conf.worker_concurrency == 8
        assert conf["task_default_queue"] == "high"
        assert conf.changed() == {"worker_concurrency", "task_default_queue"}

    def test_mapping_style_access_validates_too(self) -> None:
        conf = Settings()
        conf["task_acks_late"] = False
        assert conf["task_acks_late"] is False
        with pytest.raises(ConfigurationError, match="'task_acks_late' must be a bool"):
            conf["task_acks_late"] = "no"
        assert "task_acks_late" in conf
        assert "broker" in conf
        assert "worker_direct" not in conf
        assert "nope" not in conf

    def test_durations_take_timedelta_and_numbers_as_float_seconds(self) -> None:
        conf = Settings()
        conf.update(
            result_expires=timedelta(hours=2),
            task_time_limit=30,
            task_soft_time_limit=12.5,
        )
        assert conf.result_expires == 7200.0
        assert isinstance(conf.task_time_limit, float)
        assert conf.task_time_limit == 30.0
        assert conf.task_soft_time_limit == 12.5

    def test_zero_result_expiry_means_never(self) -> None:
        conf = Settings({"result_expires": 0})
        assert conf.result_expires is None

    def test_lists_take_tuples_and_sets(self) -> None:
        conf = Settings({"accept_content": {"msgpack", "json"}, "imports": ("a", "b")})
        assert conf.accept_content == ["json", "msgpack"]
        assert conf.imports == ["a", "b"]

    def test_none_is_allowed_only_where_the_default_allows_it(self) -> None:
        conf = Settings({"task_max_retries": None, "result_expires": None})
        assert conf.task_max_retries is None
        with pytest.raises(ConfigurationError, match="'task_serializer' must be"):
            conf.task_serializer = None

    def test_rate_limits_are_normalized_strings(self) -> None:
        conf = Settings()
        conf.task_default_rate_limit = "10/ m"
        assert conf.task_default_rate_limit == "10/m"
        conf.task_default_rate_limit = 2.5
        assert conf.task_default_rate_limit == "2.5"
        conf.task_default_rate_limit = 1e-05
        assert conf.task_default_rate_limit == "0.00001"
        with pytest.raises(ConfigurationError, match="task_default_rate_limit"):
            conf.task_default_rate_limit = "10/d"

    def test_retry_policy_keeps_defaults_for_missing_keys(self) -> None:
        conf = Settings({"task_publish_retry_policy": {"max_retries": 10}})
        assert conf.task_publish_retry_policy["max_retries"] == 10
        assert conf.task_publish_retry_policy["interval_max"] == 0.2

    def test_retry_policy_unknown_key_names_the_closest(self) -> None:
        with pytest.raises(
            ConfigurationError,
            match="unknown key 'intervl_max'; did you mean 'interval_max'",
        ):
            Settings({"task_publish_retry_policy": {"intervl_max": 1}})

    def test_celery_queue_mapping_becomes_a_list_of_dicts(self) -> None:
        conf = Settings({"task_queues": {"cpu": {"routing_key": "cpu"}}})
        assert conf.task_queues == [{"name": "cpu", "routing_key": "cpu"}]
        conf.task_queues = ["a", {"name": "b"}]
        assert conf.task_queues == ["a", {"name": "b"}]

    def test_routes_take_a_router_function(self) -> None:
        def route(name: str, *args: Any, **kwargs: Any) -> None:
            return None

        conf = Settings({"task_routes": route})
        assert conf.task_routes is route
        with pytest.raises(ConfigurationError, match="a dict, list or callable"):
            conf.task_routes = "proj.routers.route"

    def test_log_level_is_upper_cased(self) -> None:
        conf = Settings({"worker_redirect_stdouts_level": "info"})
        assert conf.worker_redirect_stdouts_level == "INFO"

    def test_setdefault_keeps_explicit_values(self) -> None:
        conf = Settings({"worker_concurrency": 4})
        assert conf.setdefault("worker_concurrency", 2) == 4
        assert conf.setdefault("worker_pool", "threads") == "threads"
        assert conf.worker_pool == "threads"
        with pytest.raises(ConfigurationError, match="did you mean 'worker_pool'"):
            conf.setdefault("worker_pol", "solo")

    def test_setdefault_of_an_unsupported_celery_setting_keeps_the_first(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        conf = Settings()
        assert conf.setdefault("BROKER_POOL_LIMIT", 10) == 10
        assert conf.setdefault("broker_pool_limit", 20) == 10
        assert len(unsupported_warnings(caplog)) == 1

    def test_as_dict_returns_copies(self) -> None:
        conf = Settings()
        conf.as_dict()["accept_content"].append("pickle")
        assert conf.accept_content == ["json"]

    def test_settings_pickle(self) -> None:
        conf = Settings({"broker_url": "memory://", "accept_content": ["json"]})
        clone = pickle.loads(pickle.dumps(conf))
        assert clone.as_dict() == conf.as_dict()
        assert clone.changed() == conf.changed()


class TestWrongTypes:
    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            (
                "worker_prefetch_multiplier",
                "x",
                "setting 'worker_prefetch_multiplier' must be an int >= 0, "
                "got 'x' (str)",
            ),
            (
                "worker_prefetch_multiplier",
                -1,
                "setting 'worker_prefetch_multiplier' must be an int >= 0, "
                "got -1 (int)",
            ),
            (
                "worker_concurrency",
                True,
                "setting 'worker_concurrency' must be an int >= 1 or None, "
                "got True (bool)",
            ),
            (
                "task_default_priority",
                10,
                "setting 'task_default_priority' must be an int from 0 to 9 or None",
            ),
            (
                "accept_content",
                "json",
                "setting 'accept_content' must be a list of str, got 'json' (str)",
            ),
            ("task_protocol", 3, "setting 'task_protocol' must be one of 1, 2"),
            (
                "task_default_exchange_type",
                "headers",
                "must be one of 'direct', 'topic', 'fanout'",
            ),
            ("result_expires", -5, "setting 'result_expires' must be a number"),
            ("broker_transport_options", [], "must be a dict with str keys"),
            ("timezone", "Mars/Olympus", "no such time zone"),
        ],
    )
    def test_message_names_the_setting_and_value(
        self, name: str, value: object, message: str
    ) -> None:
        with pytest.raises(ConfigurationError) as info:
            Settings({name: value})
        assert message in str(info.value)

    def test_a_string_is_not_an_int_outside_the_environment(self) -> None:
        with pytest.raises(ConfigurationError, match="got '5' \\(str\\)"):
            Settings({"worker_concurrency": "5"})

    def test_error_is_a_value_error_and_a_queue_meta_error(self) -> None:
        with pytest.raises(ValueError, match="task_acks_late") as info:
            Settings({"task_acks_late": 1})
        assert isinstance(info.value, QueueMetaError)

    def test_every_problem_is_listed(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            Settings({"broker_url": 5, "task_ack_late": True, "task_acks_late": "y"})
        text = str(info.value)
        assert text.startswith("3 invalid settings:")
        assert "'broker_url' must be" in text
        assert "did you mean 'task_acks_late'" in text
        assert "'task_acks_late' must be a bool" in text


class TestUpdate:
    def test_update_takes_a_mapping_and_keywords(self) -> None:
        conf = Settings()
        conf.update({"task_acks_late": False}, task_serializer="msgpack")
        assert conf.task_acks_late is False
        assert conf.task_serializer == "msgpack"

    def test_keywords_win_over_the_mapping(self) -> None:
        conf = Settings()
        conf.update({"worker_pool": "solo"}, worker_pool="threads")
        assert conf.worker_pool == "threads"

    def test_one_bad_key_applies_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        conf = Settings({"worker_concurrency": 2})
        before = conf.as_dict()
        with pytest.raises(ConfigurationError):
            conf.update(
                {
                    "worker_concurrency": 4,
                    "task_acks_late": False,
                    "worker_direct": True,
                },
                task_ack_late=True,
            )
        assert conf.as_dict() == before
        assert conf.changed() == {"worker_concurrency"}
        assert conf.ignored() == {}
        assert unsupported_warnings(caplog) == []

    def test_one_bad_value_applies_nothing(self) -> None:
        conf = Settings()
        with pytest.raises(ConfigurationError):
            conf.update(broker_url="redis://", worker_prefetch_multiplier="x")
        assert conf.broker_url is None

    def test_alias_and_name_with_different_values_conflict(self) -> None:
        with pytest.raises(ConfigurationError, match="'broker' and 'broker_url' both"):
            Settings({"broker": "redis://a", "broker_url": "redis://b"})

    def test_alias_and_name_with_the_same_value_agree(self) -> None:
        conf = Settings({"broker": "redis://a", "BROKER_URL": "redis://a"})
        assert conf.broker_url == "redis://a"

    def test_settings_must_be_a_mapping(self) -> None:
        with pytest.raises(ConfigurationError, match="must be given as a mapping"):
            Settings([("broker_url", "x")])  # type: ignore[arg-type]


class TestUnknownNames:
    @pytest.mark.parametrize(
        ("typo", "suggestion"),
        [
            ("task_ack_late", "task_acks_late"),
            ("worker_prefetch_multiplyer", "worker_prefetch_multiplier"),
            ("brokr", "broker"),
            ("backnd", "backend"),
            ("CELERY_TASK_SERIALISER", "CELERY_TASK_SERIALIZER"),
            ("TASK_ACKS_LATE", "task_acks_late"),
        ],
    )
    def test_suggests_the_closest_name_or_alias(
        self, typo: str, suggestion: str
    ) -> None:
        with pytest.raises(ConfigurationError) as info:
            Settings({typo: True})
        assert str(info.value) == (
            f"unknown setting {typo!r}; did you mean {suggestion!r}?"
        )

    def test_no_close_match_points_to_the_registry(self) -> None:
        with pytest.raises(ConfigurationError, match=r"queue_meta\.config\.SETTINGS"):
            Settings({"frobnicate": 1})

    def test_attribute_typo_is_an_error_not_a_new_attribute(self) -> None:
        conf = Settings()
        with pytest.raises(ConfigurationError, match="did you mean 'task_acks_late'"):
            conf.task_ack_late = False
        assert not hasattr(conf, "task_ack_late")

    def test_reading_an_unknown_name_is_an_error(self) -> None:
        with pytest.raises(ConfigurationError, match="did you mean 'task_acks_late'"):
            Settings()["task_ack_late"]

    def test_names_must_be_strings(self) -> None:
        with pytest.raises(ConfigurationError, match="setting names are str"):
            Settings({1: True})  # type: ignore[dict-item]


class TestCeleryNames:
    def test_aliases(self) -> None:
        conf = Settings({"broker": "amqp://", "backend": "redis://"})
        assert conf.broker_url == "amqp://"
        assert conf.result_backend == "redis://"
        assert conf["broker"] == "amqp://"
        assert conf.changed() == {"broker_url", "result_backend"}
        assert "broker" in SETTINGS["broker_url"].aliases

    def test_old_upper_case_names(self) -> None:
        conf = Settings(
            {
                "BROKER_URL": "amqp://",
                "CELERY_RESULT_BACKEND": "redis://",
                "CELERY_TASK_SERIALIZER": "msgpack",
                "CELERYD_PREFETCH_MULTIPLIER": 4,
                "CELERY_ALWAYS_EAGER": True,
            }
        )
        assert conf.broker_url == "amqp://"
        assert conf.result_backend == "redis://"
        assert conf.task_serializer == "msgpack"
        assert conf.worker_prefetch_multiplier == 4
        assert conf.task_always_eager is True

    def test_celery_eta_limit_name_is_an_alias(self) -> None:
        conf = Settings({"worker_eta_task_limit": 50})
        assert conf.worker_eta_limit == 50

    @pytest.mark.parametrize(
        "name",
        ["worker_direct", "beat_schedule", "broker_pool_limit", "event_serializer"],
    )
    def test_unsupported_celery_setting_warns_and_is_kept_aside(
        self, name: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        conf = Settings({name: {"x": 1}})
        assert conf.ignored() == {name: {"x": 1}}
        assert name not in conf.changed()
        assert unsupported_warnings(caplog) == [
            f"celery setting {name!r} is not supported by queue-meta and is ignored"
        ]
        assert caplog.records[-1].levelno == logging.WARNING

    def test_unsupported_setting_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        conf = Settings({"task_annotations": {}})
        conf.update(task_annotations={"*": {}})
        conf["CELERY_ANNOTATIONS"] = {}
        assert len(unsupported_warnings(caplog)) == 1
        assert conf.ignored() == {"task_annotations": {}}

    def test_old_name_of_unsupported_setting_warns_by_the_given_name(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        Settings({"BROKER_POOL_LIMIT": 10})
        assert unsupported_warnings(caplog) == [
            "celery setting 'BROKER_POOL_LIMIT' is not supported by queue-meta "
            "and is ignored"
        ]

    def test_reading_an_unsupported_setting_says_so(self) -> None:
        with pytest.raises(ConfigurationError, match="not supported by queue-meta"):
            Settings({"worker_direct": True})["worker_direct"]


class TestEnvironment:
    def test_environment_is_read_only_when_given(self) -> None:
        environ = {"QUEUE_BROKER_URL": "redis://env"}
        assert Settings().broker_url is None
        assert Settings(environ=environ).broker_url == "redis://env"

    def test_values_are_parsed_by_type(self) -> None:
        conf = Settings(
            environ={
                "QUEUE_WORKER_CONCURRENCY": " 8 ",
                "QUEUE_TASK_ACKS_LATE": "off",
                "QUEUE_TASK_TRACK_STARTED": "Yes",
                "QUEUE_ACCEPT_CONTENT": "json, msgpack",
                "QUEUE_IMPORTS": '["a.tasks", "b.tasks"]',
                "QUEUE_BROKER_TRANSPORT_OPTIONS": '{"visibility_timeout": 60}',
                "QUEUE_RESULT_EXPIRES": "3600",
                "QUEUE_TASK_TIME_LIMIT": "",
                "QUEUE_HOME": "/srv/queue",
            }
        )
        assert conf.worker_concurrency == 8
        assert conf.task_acks_late is False
        assert conf.task_track_started is True
        assert conf.accept_content == ["json", "msgpack"]
        assert conf.imports == ["a.tasks", "b.tasks"]
        assert conf.broker_transport_options == {"visibility_timeout": 60}
        assert conf.result_expires == 3600.0
        assert conf.task_time_limit is None
        assert conf.queue_home == "/srv/queue"
        assert "worker_concurrency" in conf.changed()

    def test_invalid_value_names_variable_and_setting(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            Settings(environ={"QUEUE_WORKER_CONCURRENCY": "abc"})
        assert str(info.value) == (
            "environment variable QUEUE_WORKER_CONCURRENCY='abc' is not a valid int "
            "for setting 'worker_concurrency'"
        )

    @pytest.mark.parametrize(
        ("var", "text", "message"),
        [
            ("QUEUE_TASK_ACKS_LATE", "maybe", "is not a valid bool"),
            ("QUEUE_BROKER_TRANSPORT_OPTIONS", "[1]", "is not a valid JSON object"),
            ("QUEUE_WORKER_PREFETCH_MULTIPLIER", "-1", "must be an int >= 0"),
            ("QUEUE_RESULT_EXPIRES", "soon", "is not a valid number of seconds"),
        ],
    )
    def test_invalid_values(self, var: str, text: str, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            Settings(environ={var: text})

    def test_explicit_values_win_over_the_environment(self) -> None:
        environ = {"QUEUE_BROKER_URL": "redis://env", "QUEUE_WORKER_POOL": "solo"}
        conf = Settings({"broker": "redis://explicit"}, environ=environ)
        assert conf.broker_url == "redis://explicit"
        assert conf.worker_pool == "solo"
        conf.update(worker_pool="threads")
        assert conf.worker_pool == "threads"

    def test_an_overridden_variable_is_not_even_parsed(self) -> None:
        conf = Settings(
            {"worker_concurrency": 2}, environ={"QUEUE_WORKER_CONCURRENCY": "abc"}
        )
        assert conf.worker_concurrency == 2

    def test_a_near_miss_variable_is_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        Settings(environ={"QUEUE_BROKER_ULR": "x", "QUEUE_REQUIRE_SERVICES": "redis"})
        messages = [record.getMessage() for record in caplog.records]
        assert messages == [
            "environment variable QUEUE_BROKER_ULR is not a queue-meta setting and "
            "is ignored; did you mean QUEUE_BROKER_URL?"
        ]


@pytest.fixture
def config_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], str]]:
    """Write a module under a unique name on sys.path; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


class TestFromObject:
    def test_module_by_name(self, config_module: Callable[[str, str], str]) -> None:
        name = config_module(
            "qm_test_celeryconfig",
            """
            import os
            from datetime import timedelta

            broker_url = "redis://localhost/1"
            result_expires = timedelta(hours=1)
            task_acks_late = False
            CELERY_TASK_SERIALIZER = "msgpack"
            DEBUG = True

            def helper():
                return 1

            def task_routes(name, args, kwargs, options, task=None, **kw):
                return {"queue": "other"}
            """,
        )
        conf = Settings()
        conf.from_object(name)
        assert conf.broker_url == "redis://localhost/1"
        assert conf.result_expires == 3600.0
        assert conf.task_acks_late is False
        assert conf.task_serializer == "msgpack"
        assert callable(conf.task_routes)
        assert conf.changed() == {
            "broker_url",
            "result_expires",
            "task_acks_late",
            "task_serializer",
            "task_routes",
        }

    def test_attribute_of_a_module(
        self, config_module: Callable[[str, str], str]
    ) -> None:
        name = config_module(
            "qm_test_attrconfig",
            """
            class Config:
                worker_concurrency = 3
            """,
        )
        conf = Settings()
        conf.from_object(f"{name}:Config")
        assert conf.worker_concurrency == 3

    def test_unknown_name_in_a_module_names_the_module(
        self, config_module: Callable[[str, str], str]
    ) -> None:
        name = config_module("qm_test_badconfig", "task_ack_late = True\n")
        conf = Settings()
        with pytest.raises(ConfigurationError) as info:
            conf.from_object(name)
        assert str(info.value) == (
            "in 'qm_test_badconfig': unknown setting 'task_ack_late'; "
            "did you mean 'task_acks_late'?"
        )

    def test_missing_module_or_attribute_is_an_import_error(
        self, config_module: Callable[[str, str], str]
    ) -> None:
        with pytest.raises(ImportError, match="qm_test_no_such_module"):
            Settings().from_object("qm_test_no_such_module")
        name = config_module("qm_test_emptyconfig", "")
        with pytest.raises(ImportError, match="has no attribute 'Config'"):
            Settings().from_object(f"{name}:Config")

    def test_class(self) -> None:
        class Config:
            broker_url = "amqp://"
            task_default_queue = "work"
            BROKER_POOL_LIMIT = 5
            DEBUG = True

            def method(self) -> None:
                return None

        conf = Settings()
        conf.from_object(Config)
        assert conf.broker_url == "amqp://"
        assert conf.task_default_queue == "work"
        assert conf.ignored() == {"broker_pool_limit": 5}

    def test_instance_and_mapping(self) -> None:
        class Config:
            def __init__(self) -> None:
                self.worker_pool = "threads"

        conf = Settings()
        conf.from_object(Config())
        conf.from_object({"worker_concurrency": 2})
        assert conf.worker_pool == "threads"
        assert conf.worker_concurrency == 2

    def test_bad_object_applies_nothing(self) -> None:
        class Config:
            broker_url = "amqp://"
            worker_concurrency = "many"

        conf = Settings()
        with pytest.raises(ConfigurationError, match="in 'Config': setting"):
            conf.from_object(Config)
        assert conf.broker_url is None


class TestSecrets:
    def test_repr_masks_url_passwords_and_the_key_password(self) -> None:
        conf = Settings(
            {
                "broker_url": "amqp://guest:hunter2@localhost//",
                "result_backend": "redis://:hunter2@localhost/0",
                "security_key_password": "hunter2",
                "broker_transport_options": {
                    "sentinel_kwargs": {"password": "hunter2"}
                },
            }
        )
        text = repr(conf)
        assert "hunter2" not in text
        assert "amqp://guest:****@localhost//" in text
        assert "redis://:****@localhost/0" in text
        assert conf.broker_url == "amqp://guest:hunter2@localhost//"
        assert "hunter2" not in conf.describe()

    def test_as_dict_masks_the_key_password_unless_asked(self) -> None:
        conf = Settings({"security_key_password": b"hunter2"})
        masked = conf.as_dict()["security_key_password"]
        assert masked == "****"
        assert conf.as_dict(reveal_secrets=True)["security_key_password"] == b"hunter2"
        assert conf.security_key_password == b"hunter2"

    def test_errors_mask_secrets(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            Settings({"result_backend": ["redis://:hunter2@host"]})
        assert "redis://:****@host" in str(info.value)
        with pytest.raises(ConfigurationError) as info:
            Settings({"security_key_password": 1234})
        assert "1234" not in str(info.value)
        with pytest.raises(ConfigurationError) as info:
            Settings(environ={"QUEUE_BROKER_CONNECTION_TIMEOUT": "http://u:hunter2@x"})
        assert "hunter2" not in str(info.value)

    def test_repr_shows_only_changed_settings(self) -> None:
        assert repr(Settings()) == "Settings({})"
        assert (
            repr(Settings({"worker_pool": "solo"}))
            == "Settings({'worker_pool': 'solo'})"
        )


def test_task_queues_options_are_checked() -> None:
    settings = Settings()
    settings.update(
        task_queues={"media": {"exchange": "media", "exchange_type": "topic"}}
    )
    assert settings.task_queues == [
        {"name": "media", "exchange": "media", "exchange_type": "topic"}
    ]
    with pytest.raises(ConfigurationError, match="did you mean 'routing_key'"):
        settings.update(task_queues=[{"name": "media", "routingkey": "media.#"}])
    assert Settings().task_dead_letter_queue == "{queue}.dead"
