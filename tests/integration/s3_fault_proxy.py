"""A small fault-injecting HTTP/1.1 proxy for S3 tests (loopback only).

It sits between the client under test and a real S3 server and, per request, either forwards
it or injects a fault chosen by ``rule(method, path, number)``:

* ``"pass"``  forward the request and the whole response
* ``"503"``   answer ``503 SlowDown`` itself (the connection stays usable)
* ``"reset"`` drop the client's connection with a TCP RST before answering
* ``"cut"``   forward, then send the response headers and half the body, then close
* a callable: called (e.g. to kill the server), then the request is forwarded

Only bodiless requests (GET/HEAD/DELETE) and bodies with Content-Length are supported: enough
for listing and downloading.
"""

import socket
import struct
import threading

_BODY = b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>\n"
SLOWDOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % len(_BODY)) + _BODY


def _read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def _length(head):
    for line in head.split(b"\r\n")[1:]:
        name, unused, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class FaultProxy:
    def __init__(self, upstream_host, upstream_port, rule=None):
        self.upstream = (upstream_host, upstream_port)
        self.rule = rule or (lambda method, path, number: "pass")
        self.log = []
        self._count = 0
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self):
        self._closed = True
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept(self):
        while not self._closed:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = None
        buf = b""
        try:
            while True:
                head, buf = _read_head(client, buf)
                if head is None:
                    return
                body_len = _length(head)
                while len(buf) < body_len:
                    buf += client.recv(65536)
                body, buf = buf[:body_len], buf[body_len:]
                method, path = head.split(b" ", 2)[:2]
                method, path = method.decode(), path.decode()
                with self._lock:
                    self._count += 1
                    number = self._count
                action = self.rule(method, path, number)
                self.log.append((method, path, action if isinstance(action, str) else "call"))
                if callable(action):
                    action()
                    action = "pass"
                if action == "503":
                    client.sendall(SLOWDOWN)
                    continue
                if action == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=30)
                upstream.sendall(head + body)
                rhead, rest = _read_head(upstream, b"")
                if rhead is None:
                    return
                length = 0 if method == "HEAD" else _length(rhead)
                if method != "HEAD" and b"chunked" in rhead.lower():
                    while not rest.endswith(b"0\r\n\r\n"):
                        data = upstream.recv(262144)
                        if not data:
                            break
                        rest += data
                    length = len(rest)
                while len(rest) < length:
                    data = upstream.recv(262144)
                    if not data:
                        break
                    rest += data
                if action == "cut":
                    client.sendall(rhead + rest[:max(1, length // 2)])
                    return
                client.sendall(rhead + rest[:length])
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()
