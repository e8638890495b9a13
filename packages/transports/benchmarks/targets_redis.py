"""The Redis target of ``bench_transports.py``: the transport beside raw redis-py.

The baseline issues the transport's own commands through redis-py alone:
the same kombu envelope (JSON, body in base64, a uuid4 delivery tag; built
from a byte template, as the transport does for plain messages) pushed
with the same pipeline (``LPUSH`` plus the wake key's ``LPUSH``/``LTRIM``),
the same claim script and the same ack script, so the ratio is what the
transport's own Python work costs. The server comes from ``REDIS_URL``
(default ``redis://127.0.0.1:6379/0``); every key lives under a prefix of
this run and is deleted afterwards (``SCAN MATCH`` + ``DEL``, never a flush).
"""

from __future__ import annotations

import binascii
import json
import os
import time
import uuid
from typing import Any

import redis
from bench_transports import Baseline, Target

from transports import _redis_lua

OURS = f"qm_bench_{os.getpid()}:"
RAW = f"qm_bench_{os.getpid()}_raw:"
STEPS = (0, 3, 6, 9)
LEASE = 60.0
ENVELOPE = (
    b'{"body": "%s", "content-encoding": null, "content-type": null, "headers": {}, '
    b'"properties": {"delivery_tag": "%s", "delivery_info": {"exchange": "", '
    b'"routing_key": %s}, "priority": 0, "body_encoding": "base64"}}'
)


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


class RedisBaseline(Baseline):
    """redis-py pipelines and the transport's Lua scripts, nothing else."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, protocol=2)
        self.prefix = prefix
        self.token = uuid.uuid4().hex
        self.claim = self.client.register_script(_redis_lua.CLAIM)
        self.settle = self.client.register_script(_redis_lua.SETTLE)

    def _envelope(self, queue: str, body: bytes) -> bytes:
        # The envelope json.dumps would write, built the cheapest way.
        return ENVELOPE % (
            binascii.b2a_base64(body, newline=False),
            str(uuid.uuid4()).encode(),
            json.dumps(queue).encode(),
        )

    def _keys(self, queue: str) -> list[bytes]:
        base = (self.prefix + queue).encode()
        return [base if s == 0 else base + b"\x06\x16%d" % s for s in STEPS]

    def _push(self, queue: str, envelopes: list[bytes]) -> None:
        wake = (self.prefix + "_qm.wake." + queue).encode()
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self._keys(queue)[0], *envelopes)
        pipe.lpush(wake, b"1")
        pipe.ltrim(wake, 0, 0)
        pipe.execute()

    def publish(self, queue: str, bodies: list[bytes]) -> None:
        for body in bodies:
            self._push(queue, [self._envelope(queue, body)])

    def publish_batches(self, queue: str, bodies: list[bytes], batch: int) -> None:
        for start in range(0, len(bodies), batch):
            chunk = bodies[start : start + batch]
            self._push(queue, [self._envelope(queue, body) for body in chunk])

    def consume(self, queue: str, count: int, prefetch: int) -> None:
        wake = (self.prefix + "_qm.wake." + queue).encode()
        suffix = b', "", ' + json.dumps(queue).encode() + b"]"
        lists: list[Any] = []
        for key in reversed(self._keys(queue)):
            lists += (key, suffix, wake)
        head = [self.prefix.encode(), self.token]
        done = 0
        while done < count:
            reply = self.claim(
                args=[*head, repr(time.time()), prefetch, repr(LEASE), 5000, 4, *lists]
            )
            tags = [
                json.loads(reply[i])["properties"]["delivery_tag"]
                for i in range(2, len(reply), 3)
            ]
            if not tags:
                raise AssertionError("the baseline ran out of messages")
            self.settle(args=[*head, "ack", *tags])
            done += len(tags)

    def purge(self, queue: str) -> None:
        self.client.delete(*self._keys(queue))

    def close(self) -> None:
        _delete_prefix(self.client, self.prefix)
        _delete_prefix(self.client, OURS)
        self.client.close()


def targets(tmp: str) -> dict[str, Target]:
    """The Redis target, for ``bench_transports.targets()``."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "redis": Target(
            url,
            {"global_keyprefix": OURS},
            lambda: RedisBaseline(url, RAW),
            url,
            {"global_keyprefix": RAW},
        )
    }
