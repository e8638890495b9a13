"""Frames exchanged between a prefork pool, its fork server and its workers.

A frame is a 4-byte big-endian length of what follows, one type byte, and a
body. Bodies are pickles written by this package or packed integers; they
travel only over socket pairs between processes of one pool.
"""

from __future__ import annotations

import pickle
import select
import socket
import struct

__all__ = [
    "CALLS",
    "DROP",
    "DROPPED",
    "ERROR",
    "HEADER",
    "ID",
    "LOG",
    "RESULT",
    "RETIRE",
    "RETURNED",
    "STEAL",
    "STOP",
    "UNPICKLABLE",
    "FrameReader",
    "frame",
    "pickle_frame",
    "send_all",
]

HEADER = struct.Struct("!IB")
ID = struct.Struct("!Q")

# Parent to worker, call socket.
CALLS = 1  # pickle of [(call id, soft limit, payload bytes), ...]
STOP = 2  # empty: run the finalizer and exit
# Worker to parent, call socket.
RESULT = 10  # call id + pickle of the value
ERROR = 11  # call id + pickle of (exception or None, type name, message, traceback)
UNPICKLABLE = 12  # call id + pickle of (type name, reason)
RETIRE = 13  # pickle of [call ids handed back]; the worker waits for STOP
LOG = 14  # pickle of (level, message) for the parent's logger
# Parent to worker, control socket.
STEAL = 20  # count: hand back up to this many calls that have not started
DROP = 21  # call id: hand back this call if it has not started
# Worker to parent, control socket.
RETURNED = 30  # pickle of [call ids handed back]
DROPPED = 31  # call id + one byte: 1 if it was handed back

PROTOCOL = pickle.HIGHEST_PROTOCOL


def frame(kind: int, body: bytes = b"") -> bytes:
    """Return one frame of type *kind*."""
    return HEADER.pack(len(body) + 1, kind) + body


def pickle_frame(kind: int, obj: object) -> bytes:
    """Return one frame of type *kind* whose body is the pickle of *obj*."""
    return frame(kind, pickle.dumps(obj, PROTOCOL))


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Send all of *data* on a blocking socket, waiting at most *timeout* when full.

    Raises:
        TimeoutError: The peer read nothing for *timeout* seconds.
        OSError: The peer is gone.
    """
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view, socket.MSG_DONTWAIT)
        except BlockingIOError:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLOUT)
            if not poller.poll(timeout * 1000):
                raise TimeoutError(f"the peer read nothing for {timeout:g} s") from None
            continue
        view = view[sent:]


class FrameReader:
    """Reads whole frames from a stream socket, buffering partial ones."""

    __slots__ = ("_buffer", "_sock", "eof", "got")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.eof = False
        self.got = 0

    def read_available(self, size: int = 262144) -> list[tuple[int, bytes]]:
        """Read once without blocking and return the frames now complete.

        Sets :attr:`got` to the number of bytes read, and :attr:`eof` when the
        peer closed its end (or the connection broke).
        """
        self.got = 0
        try:
            data = self._sock.recv(size, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return []
        self.got = len(data)
        self._buffer += data
        return self._split()

    def read_one(self) -> tuple[int, bytes] | None:
        """Block until one whole frame arrives; ``None`` at end of stream."""
        while True:
            frames = self._split(limit=1)
            if frames:
                return frames[0]
            try:
                data = self._sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return None
            self._buffer += data

    def _split(self, limit: int = 0) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        frames: list[tuple[int, bytes]] = []
        offset = 0
        size = len(buffer)
        while size - offset >= 5:
            length, kind = HEADER.unpack_from(buffer, offset)
            end = offset + 4 + length
            if end > size:
                break
            frames.append((kind, bytes(buffer[offset + 5 : end])))
            offset = end
            if limit and len(frames) >= limit:
                break
        if offset:
            del buffer[:offset]
        return frames
