"""Tests for lessons_lib.data: caching, verification and error messages, against a local HTTP server
only."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from lessons_lib import data
from lessons_lib.data import (
    TINY_SHAKESPEARE,
    Dataset,
    DatasetChecksumError,
    DatasetUnavailableError,
    fetch,
    load_tiny_shakespeare,
    train_val_split,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A dropped connection: http.client (3.11) returns a short body, so the size check refuses it;
# should a Python version raise IncompleteRead instead, fetch reports a broken connection. Either
# way: refused.
TRUNCATION_ERRORS = (DatasetChecksumError, DatasetUnavailableError)
PAYLOAD = ("To be, or not to be, that is the question:\n" * 50).encode("utf-8")


def make_dataset(url: str, payload: bytes = PAYLOAD) -> Dataset:
    return Dataset(
        name="Tiny Test",
        filename="tiny.txt",
        url=url,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )


class FakeServer:
    """Serves ``routes[path] = (body, content_length)`` and counts requests. A ``content_length``
    larger than the body simulates a connection that drops mid-download."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # keep stderr clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def serve(self, path: str, body: bytes, content_length: int | None = None) -> str:
        self.routes[path] = (body, len(body) if content_length is None else content_length)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No proxies, and a per-test user cache so nothing touches the real ~/.cache."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tiny.txt"


# --- download and cache ---------------------------------------------------------------------------


def test_download_into_empty_cache(server, tmp_path):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    cache = tmp_path / "cache" / "nested"  # created on demand
    path = fetch(ds, cache_dir=cache, progress=False)
    assert path == cache / "tiny.txt"
    assert path.read_bytes() == PAYLOAD
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ds.sha256
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.txt"]  # no temp files left
    assert server.requests == ["/tiny.txt"]


def test_progress_bar_goes_to_stdout_not_stderr(server, tmp_path, capsys):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    fetch(ds, cache_dir=tmp_path, progress=True)
    assert capsys.readouterr().err == ""


def test_cache_hit_does_not_touch_network(server, tmp_path, closed_port_url, capsys):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    fetch(ds, cache_dir=tmp_path, progress=False)
    assert len(server.requests) == 1
    # Second call: served from the cache, even with a URL where nothing listens.
    path = fetch(ds, cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert path.read_bytes() == PAYLOAD
    path = fetch(ds, cache_dir=tmp_path, progress=False)
    assert len(server.requests) == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "cached", [b"To be, or not", PAYLOAD[:-1] + b"?", b""], ids=["truncated", "corrupt", "empty"]
)
def test_corrupt_cache_is_detected_and_refetched(server, tmp_path, capsys, cached):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    (tmp_path / "tiny.txt").write_bytes(cached)
    path = fetch(ds, cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/tiny.txt"]
    out = capsys.readouterr().out
    assert (
        out.count("\n") == 1 and "corrupt or truncated" in out and str(tmp_path / "tiny.txt") in out
    )


def test_wrong_bytes_are_refused_and_not_cached(server, tmp_path):
    wrong = PAYLOAD.replace(b"question", b"QUESTION")
    assert len(wrong) == len(PAYLOAD)
    ds = make_dataset(server.serve("/tiny.txt", wrong))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetChecksumError) as info:
        fetch(ds, cache_dir=cache, progress=False)
    msg = str(info.value)
    assert (
        ds.sha256 in msg
        and hashlib.sha256(wrong).hexdigest() in msg
        and f"{len(PAYLOAD):,} bytes" in msg
    )
    assert isinstance(info.value, ValueError)
    assert info.value.got_sha256 == hashlib.sha256(wrong).hexdigest()
    assert list(cache.iterdir()) == []  # neither the file nor a temp file


def test_wrong_download_does_not_replace_corrupt_cache(server, tmp_path):
    ds = make_dataset(server.serve("/tiny.txt", b"x" * len(PAYLOAD)))
    (tmp_path / "tiny.txt").write_bytes(b"old")
    with pytest.raises(DatasetChecksumError):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]
    assert (tmp_path / "tiny.txt").read_bytes() == b"old"


def test_truncated_download_is_refused(server, tmp_path):
    # The server announces the full length but the connection closes after half the bytes.
    ds = make_dataset(
        server.serve("/tiny.txt", PAYLOAD[: len(PAYLOAD) // 2], content_length=len(PAYLOAD))
    )
    with pytest.raises(TRUNCATION_ERRORS) as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert "truncated" in str(info.value) or "connection broke" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_short_file_with_honest_length_is_refused(server, tmp_path):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD[:100]))
    with pytest.raises(DatasetChecksumError, match="truncated") as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert info.value.got_size == 100 and info.value.expected_size == len(PAYLOAD)
    assert list(tmp_path.iterdir()) == []


def test_oversized_download_is_refused(server, tmp_path):
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD * 3))
    with pytest.raises(DatasetChecksumError, match="too large"):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


# --- offline and HTTP errors ----------------------------------------------------------------------


def test_offline_error_says_what_to_do(tmp_path, closed_port_url):
    ds = make_dataset(closed_port_url)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    msg = str(info.value)
    assert str(tmp_path / "tiny.txt") in msg
    assert closed_port_url in msg
    assert data.DATA_DIR_ENV in msg
    assert ds.sha256 in msg
    assert isinstance(info.value, RuntimeError)
    assert info.value.path == tmp_path / "tiny.txt"
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_unavailable(server, tmp_path):
    ds = make_dataset(server.url("/missing.txt"))
    with pytest.raises(DatasetUnavailableError, match="404"):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_mirror_url_overrides_dataset_url(server, tmp_path, closed_port_url):
    ds = make_dataset(closed_port_url)
    path = fetch(ds, cache_dir=tmp_path, url=server.serve("/mirror.txt", PAYLOAD), progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == ["/mirror.txt"]


# --- where the cache is ---------------------------------------------------------------------------


def test_env_var_is_honoured(server, tmp_path, monkeypatch):
    target = tmp_path / "from-env"
    monkeypatch.setenv(data.DATA_DIR_ENV, str(target))
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    assert data.default_cache_dir() == target
    assert fetch(ds, progress=False) == target / "tiny.txt"
    assert (target / "tiny.txt").read_bytes() == PAYLOAD
    assert not (tmp_path / "xdg").exists()


def test_explicit_cache_dir_beats_env_var(server, tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "from-env"))
    ds = make_dataset(server.serve("/tiny.txt", PAYLOAD))
    assert (
        fetch(ds, cache_dir=tmp_path / "explicit", progress=False)
        == tmp_path / "explicit" / "tiny.txt"
    )
    assert not (tmp_path / "from-env").exists()


def test_default_cache_dir_fallbacks(tmp_path, monkeypatch):
    assert data.default_cache_dir() == tmp_path / "xdg" / "llm-course"
    monkeypatch.setenv(data.DATA_DIR_ENV, "")  # empty means unset
    assert data.default_cache_dir() == tmp_path / "xdg" / "llm-course"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir() == Path.home() / ".cache" / "llm-course"


def test_load_tiny_shakespeare_uses_cache(tmp_path, closed_port_url, monkeypatch):
    # A fake "Tiny Shakespeare" pinned in place of the real one: load_tiny_shakespeare reads the
    # cache.
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    fake = make_dataset(closed_port_url, text.encode("utf-8"))
    monkeypatch.setattr(
        data,
        "TINY_SHAKESPEARE",
        Dataset("Tiny Shakespeare", "tinyshakespeare.txt", fake.url, fake.sha256, fake.size),
    )
    (tmp_path / "tinyshakespeare.txt").write_bytes(text.encode("utf-8"))
    assert load_tiny_shakespeare(cache_dir=tmp_path, progress=False) == text


# --- Dataset and split ----------------------------------------------------------------------------


def test_tiny_shakespeare_description():
    assert TINY_SHAKESPEARE.size == 1_115_394
    assert (
        TINY_SHAKESPEARE.sha256
        == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    )
    assert TINY_SHAKESPEARE.filename == "tinyshakespeare.txt"
    assert TINY_SHAKESPEARE.url.endswith("karpathy/char-rnn/master/data/tinyshakespeare/input.txt")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filename": "a/b.txt"}, "filename"),
        ({"filename": ""}, "filename"),
        ({"sha256": "abc"}, "sha256"),
        ({"sha256": "A" * 64}, "sha256"),
        ({"size": -1}, "size"),
        ({"size": 1.5}, "size"),
    ],
)
def test_dataset_validates(kwargs, match):
    fields = dict(name="x", filename="x.txt", url="http://127.0.0.1/x", sha256="0" * 64, size=1)
    with pytest.raises(ValueError, match=match):
        Dataset(**{**fields, **kwargs})


def test_fetch_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="dataset"):
        fetch("tinyshakespeare", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="cache_dir"):
        fetch(make_dataset("http://127.0.0.1/x"), cache_dir=3)


def test_train_val_split_by_hand():
    assert train_val_split("abcdefghij") == ("abcdefghi", "j")
    assert train_val_split("abcdefghij", 0.5) == ("abcde", "fghij")
    assert train_val_split("abc", 0.5) == ("a", "bc")  # int(1.5) == 1, like nanoGPT
    assert train_val_split("") == ("", "")
    train, val = train_val_split("hello world " * 7, 0.3)
    assert train + val == "hello world " * 7


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_train_val_split_rejects_fraction_outside_open_interval(bad):
    with pytest.raises(ValueError, match=r"strictly between 0 and 1, got"):
        train_val_split("abc", bad)


@pytest.mark.parametrize("bad", ["0.9", None, True])
def test_train_val_split_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="train_fraction"):
        train_val_split("abc", bad)


def test_train_val_split_rejects_non_text():
    with pytest.raises(TypeError, match="text must be a str"):
        train_val_split(b"abc")


# --- the real corpus, when it is on disk ----------------------------------------------------------


def _real_corpus_dir() -> tuple[Path | None, str]:
    candidates = []
    if os.environ.get(data.DATA_DIR_ENV):
        candidates.append(Path(os.environ[data.DATA_DIR_ENV]).expanduser())
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    candidates.append(data.default_cache_dir())  # the per-user cache (CI seeds it)
    notes = []
    for folder in candidates:
        path = folder / TINY_SHAKESPEARE.filename
        if not path.is_file():
            notes.append(f"{path}: missing")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != TINY_SHAKESPEARE.sha256:
            notes.append(f"{path}: sha256 mismatch")
            continue
        return folder, ""
    return None, "; ".join(notes)


# Evaluated at import, before the autouse fixture clears LESSONS_DATA_DIR.
_REAL_DIR, _REAL_MISSING = _real_corpus_dir()


@pytest.mark.skipif(
    _REAL_DIR is None,
    reason=f"real Tiny Shakespeare not on disk ({_REAL_MISSING}); "
    f"set {data.DATA_DIR_ENV} to a folder holding it",
)
def test_real_tiny_shakespeare(closed_port_url, capsys):
    text = load_tiny_shakespeare(
        cache_dir=_REAL_DIR, url=closed_port_url, progress=False
    )  # never downloads
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:\n")
    assert len(set(text)) == 65
    train, val = train_val_split(text)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert train + val == text
    assert capsys.readouterr().out == ""
