"""Encode+decode time of one task message, per codec and compression.

Run with ``nox -s bench -- msgwire`` (or ``python benchmarks/bench_codecs.py``).
Each figure is the best of several rounds of many messages, in microseconds per
message: ``encode`` is TaskMessage.encode (headers, properties and the
serialized body), ``decode`` is TaskMessage.decode of that output, accept list
included, and ``total`` is both.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from msgwire import (
    Embed,
    JsonCodec,
    MsgpackCodec,
    Registry,
    TaskMessage,
    TimeLimit,
    __version__,
)

SENT_AT = datetime(2026, 11, 21, 5, 21, 11, 352886, tzinfo=timezone.utc)

# PROTOCOL.md section 1.11: add.apply_async((1, 1), link=add.s(10),
# link_error=fail.si('oops'), countdown=30, expires=120, priority=5,
# time_limit=60, soft_time_limit=50).
TYPICAL = TaskMessage(
    task="proj.add",
    id="fbbe5382-fd5c-4189-83dc-110a35fc8981",
    args=(1, 1),
    embed=Embed(
        callbacks=[
            {
                "task": "proj.add",
                "args": [10],
                "kwargs": {},
                "options": {},
                "subtask_type": None,
                "immutable": False,
            }
        ],
        errbacks=[
            {
                "task": "proj.fail",
                "args": ["oops"],
                "kwargs": {},
                "options": {},
                "subtask_type": None,
                "immutable": True,
            }
        ],
    ),
    eta=SENT_AT + timedelta(seconds=30),
    expires=SENT_AT + timedelta(seconds=120),
    timelimit=TimeLimit(60, 50),
    origin="gen10919@vm",
    reply_to="61dc23c2-46d2-358f-992d-3a937cc726a3",
    priority=5,
)
# add.delay(2, 3): no eta, no links.
PLAIN = TaskMessage(
    task="proj.add",
    id="fa885efd-8c88-4795-aae0-1bab8cc38224",
    args=(2, 3),
    origin="gen10919@vm",
    reply_to="61dc23c2-46d2-358f-992d-3a937cc726a3",
)


def best_per_call(func: Callable[[], object], number: int, rounds: int) -> float:
    """Return the best average time of *func* over *rounds*, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def measure(
    message: TaskMessage,
    registry: Registry,
    serializer: str,
    compression: str | None,
    number: int,
    rounds: int,
) -> tuple[float, float, int]:
    accept = [serializer]
    wire = message.encode(
        registry=registry, serializer=serializer, compression=compression
    )

    def encode() -> object:
        return message.encode(
            registry=registry, serializer=serializer, compression=compression
        )

    def decode() -> object:
        return TaskMessage.decode(
            wire.body, wire.headers, wire.properties, registry=registry, accept=accept
        )

    return (
        best_per_call(encode, number, rounds),
        best_per_call(decode, number, rounds),
        len(wire.body),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000, help="messages per round")
    parser.add_argument(
        "--rounds", type=int, default=7, help="rounds; the best is kept"
    )
    options = parser.parse_args()

    variants: list[tuple[str, Registry, str]] = [
        ("json", Registry(accept=["json"]), "json"),
        ("json (stdlib only)", Registry(codecs=[JsonCodec(fast=False)]), "json"),
        ("msgpack", Registry(codecs=[MsgpackCodec()], accept=["msgpack"]), "msgpack"),
    ]
    python = platform.python_version()
    print(f"msgwire {__version__}, Python {python}, {platform.machine()}")
    print(
        f"{options.rounds} rounds x {options.number} messages, best round, µs/message"
    )
    print(
        f"{'message':<8} {'codec':<19} {'compression':<11} "
        f"{'encode':>7} {'decode':>7} {'total':>7} {'bytes':>6}"
    )
    for label, message in (("typical", TYPICAL), ("plain", PLAIN)):
        for name, registry, serializer in variants:
            for compression in (None, "zlib"):
                enc, dec, size = measure(
                    message,
                    registry,
                    serializer,
                    compression,
                    options.number,
                    options.rounds,
                )
                print(
                    f"{label:<8} {name:<19} {compression or '-':<11} "
                    f"{enc:7.2f} {dec:7.2f} {enc + dec:7.2f} {size:6d}"
                )


if __name__ == "__main__":
    main()
