"""A TCP proxy between the app and MariaDB that a test can cut, stall and restore."""

from __future__ import annotations

import select
import socket
import threading
from contextlib import suppress


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target.

    - `cut()`: drops every connection and refuses new ones (the database is gone);
    - `stall()`: holds every connection open, old and new, and forwards nothing (the
      database or the network hangs: no error, no refusal, only silence);
    - `cut_when(marker)`: drops a connection when the client sends bytes containing marker;
    - `restore()`: back to forwarding.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stalled = False
        self._marker: bytes | None = None
        self.port = self._listen(0)

    # -------------------------------------------------------------- control

    def cut(self) -> None:
        self._close_listener()
        self._drop_connections()

    def stall(self) -> None:
        self._stalled = True

    def cut_when(self, marker: bytes) -> None:
        self._marker = marker

    def restore(self) -> None:
        if self._stalled:
            self._drop_connections()  # what they sent while stalled is lost: they are out of step
        self._stalled = False
        self._marker = None
        if self._listener is None:
            self._listen(self.port)

    def close(self) -> None:
        self.cut()

    # -------------------------------------------------------------- plumbing

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener.getsockname()[1]

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            if self._stalled:
                continue  # hold it open, forward nothing
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.add(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        pair = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(pair), [], [], 1.0)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    if self._stalled:
                        continue  # lost in the stalled network
                    if source is client and self._marker is not None and self._marker in data:
                        return
                    pair[source].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (client, upstream):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
