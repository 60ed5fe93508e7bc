"""Tests for lessons_lib.data: caching, verification and error messages (against a local HTTP server
or a file:// URL only), zip members, the stratified split, and the loaders of lessons 11 and 12 on
small stand-in files and, when they are on disk, on the real files."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lessons_lib import data
from lessons_lib.data import (
    TINY_SHAKESPEARE,
    BabiData,
    BabiQuestion,
    Dataset,
    DatasetChecksumError,
    DatasetUnavailableError,
    TextClassificationData,
    fetch,
    load_babi,
    load_sentiment_sentences,
    load_sms_spam,
    load_tiny_shakespeare,
    stratified_split,
    train_val_split,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A dropped connection: http.client (3.11) returns a short body, so the size check refuses it;
# should a Python version raise IncompleteRead instead, fetch reports a broken connection. Either
# way: refused.
TRUNCATION_ERRORS = (DatasetChecksumError, DatasetUnavailableError)
PAYLOAD = ("To be, or not to be, that is the question:\n" * 50).encode("utf-8")
# The fixed splits (seed 0, default fractions): sha256 of the sorted indices, comma-separated. A
# change here means every lesson's numbers change: only on purpose, with the lessons rebuilt.
PINNED = {
    "sms test": "27f143221510c2a475ff09a47ef42bd684b75b493ed41e21a0d75175c12c73d6",
    "sms val": "8b939b98f6dd6b13df64d22721c4ccfb460a48b4d12be798f35a20644d40ea67",
    "sentiment test": "10794696fb23e623436ebc0a443ab6184d90695a57f6a631924280335cfb97d2",
    "sentiment val": "aa02c2d006cc380e9548b5d67224c9cc74152b8e0e706134e63a119ecad39f53",
    "babi val stories": "943ba0383a692f94473ba3e13a4a70a4bdc6bf300960066670d4a0fe0eae85e2",
}
PINNED_SYNTHETIC_TEST = [0, 19, 20, 35, 39, 49]  # stratified_split on 60 synthetic messages


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


# --- zip members ----------------------------------------------------------------------------------

MEMBER = "sentiment labelled sentences/tiny.txt"


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive in memory, laid out like the UCI one (a folder, a readme, macOS clutter)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        zf.writestr("sentiment labelled sentences/", b"")
        for name, body in members.items():
            zf.writestr(name, body)
        zf.writestr("__MACOSX/sentiment labelled sentences/._tiny.txt", b"\x00\x05\x16\x07")
    return buffer.getvalue()


def make_member_dataset(url: str, payload: bytes = PAYLOAD, member: str = MEMBER) -> Dataset:
    return Dataset(
        name="Tiny Zipped",
        filename="tiny.txt",
        url=url,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        member=member,
    )


def test_zip_member_is_extracted_verified_and_cached_alone(server, tmp_path, closed_port_url):
    archive = make_zip({MEMBER: PAYLOAD, "sentiment labelled sentences/readme.txt": b"hi"})
    ds = make_member_dataset(server.serve("/sls.zip", archive))
    cache = tmp_path / "cache"
    path = fetch(ds, cache_dir=cache, progress=False)
    assert path == cache / "tiny.txt" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.txt"]  # no archive, no temp files
    assert server.requests == ["/sls.zip"]
    # cached: no second download, even with a URL where nothing listens
    assert fetch(ds, cache_dir=cache, url=closed_port_url, progress=False) == path
    assert server.requests == ["/sls.zip"]


def test_zip_member_from_a_file_url(tmp_path, closed_port_url, capsys):
    mirror = tmp_path / "mirror" / "sentiment labelled sentences.zip"
    mirror.parent.mkdir()
    mirror.write_bytes(make_zip({MEMBER: PAYLOAD}))
    ds = make_member_dataset(closed_port_url)
    path = fetch(ds, cache_dir=tmp_path / "cache", url=mirror.as_uri(), progress=True)
    assert path.read_bytes() == PAYLOAD
    assert capsys.readouterr().err == ""


def test_zip_member_with_wrong_bytes_is_refused(server, tmp_path):
    wrong = PAYLOAD.replace(b"question", b"QUESTION")
    ds = make_member_dataset(server.serve("/sls.zip", make_zip({MEMBER: wrong})))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetChecksumError) as info:
        fetch(ds, cache_dir=cache, progress=False)
    msg = str(info.value)
    assert MEMBER in msg and ds.sha256 in msg and hashlib.sha256(wrong).hexdigest() in msg
    assert info.value.got_sha256 == hashlib.sha256(wrong).hexdigest()
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("body, what", [(PAYLOAD * 3, "too large"), (PAYLOAD[:50], "truncated")])
def test_zip_member_of_wrong_size_is_refused(server, tmp_path, body, what):
    ds = make_member_dataset(server.serve("/sls.zip", make_zip({MEMBER: body})))
    with pytest.raises(DatasetChecksumError, match=what):
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_zip_without_the_member_is_refused(server, tmp_path):
    archive = make_zip({"sentiment labelled sentences/other.txt": PAYLOAD})
    ds = make_member_dataset(server.serve("/sls.zip", archive))
    with pytest.raises(data.DatasetArchiveError) as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    msg = str(info.value)
    assert f"no member {MEMBER!r}" in msg and "other.txt" in msg and str(tmp_path) in msg
    assert isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_download_that_is_not_a_zip_is_refused(server, tmp_path):
    page = b"<html><body>Dataset moved</body></html>"
    ds = make_member_dataset(server.serve("/sls.zip", page))
    with pytest.raises(data.DatasetArchiveError, match="not a zip archive") as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert f"{len(page):,} bytes" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_damaged_zip_member_is_refused(server, tmp_path):
    archive = bytearray(make_zip({MEMBER: PAYLOAD}, compression=zipfile.ZIP_STORED))
    at = archive.index(b"To be, or not")
    archive[at] ^= 0x20  # the stored bytes no longer match the member's CRC-32
    ds = make_member_dataset(server.serve("/sls.zip", bytes(archive)))
    with pytest.raises(data.DatasetArchiveError, match="could not be extracted.*CRC") as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    assert MEMBER in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_zip_member_offline_error_says_what_to_do(tmp_path, closed_port_url):
    ds = make_member_dataset(closed_port_url)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(ds, cache_dir=tmp_path, progress=False)
    msg = str(info.value)
    assert str(tmp_path / "tiny.txt") in msg and closed_port_url in msg
    assert f"extract its member {MEMBER!r}" in msg
    assert data.DATA_DIR_ENV in msg and ds.sha256 in msg and f"{len(PAYLOAD):,} bytes" in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("member", ["", "folder/", 3])
def test_dataset_member_validates(member):
    with pytest.raises(ValueError, match="member"):
        Dataset("x", "x.txt", "http://127.0.0.1/x.zip", "0" * 64, 1, member=member)


def test_the_new_datasets_are_pinned():
    assert (data.SMS_SPAM_COLLECTION.size, data.SMS_SPAM_COLLECTION.sha256[:12]) == (
        477_907,
        "7d039a24a608",
    )
    assert data.SMS_SPAM_COLLECTION.url == (
        "https://raw.githubusercontent.com/justmarkham/pycon-2016-tutorial/"
        "5339710562cc46c4a32a369d63f1e8751a18a54e/data/sms.tsv"
    )
    base = (
        "https://raw.githubusercontent.com/NishthaChaudhary/Question_Anwering_Module_RNN_LSTM/"
        "079138d8499ebfcc8194f70724541dbae628b5bb/"
    )
    assert data.BABI_QA1_TRAIN.url == base + "qa1_single-supporting-fact_train.txt"
    assert data.BABI_QA1_TEST.url == base + "qa1_single-supporting-fact_test.txt"
    assert (data.BABI_QA1_TRAIN.size, data.BABI_QA1_TEST.size) == (944_249, 94_478)
    zip_url = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
    for ds, size in [
        (data.SENTIMENT_AMAZON, 58_226),
        (data.SENTIMENT_IMDB, 85_285),
        (data.SENTIMENT_YELP, 61_320),
    ]:
        assert ds.url == zip_url and ds.size == size
        assert ds.member == "sentiment labelled sentences/" + ds.filename
        assert Path(ds.filename).name == ds.filename  # flat in the cache


# --- stratified_split -----------------------------------------------------------------------------


def _split_digest(parts) -> list[str]:
    return [hashlib.sha256(",".join(map(str, p.tolist())).encode()).hexdigest()[:16] for p in parts]


@pytest.mark.parametrize(
    "counts, fractions",
    [
        ([4827, 747], (0.8, 0.1, 0.1)),
        ([500] * 6, (0.8, 0.1, 0.1)),
        ([7, 3, 1], (0.5, 0.25, 0.25)),
        ([13, 29], (0.7, 0.3)),
        ([2000], (0.9, 0.1)),
        ([598, 3862], (0.01, 0.99)),
    ],
)
def test_stratified_split_is_a_stratified_partition(counts, fractions):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(1).shuffle(labels)
    keys = [f"text {i % 17}" for i in range(len(labels))]  # repeated texts, like SMS
    parts = stratified_split(labels, fractions, seed=0, keys=keys)
    assert len(parts) == len(fractions)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))  # covering and disjoint
    for part, f in zip(parts, fractions, strict=True):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)  # sorted, no repeats
        for c, n_c in enumerate(counts):
            assert abs(np.sum(labels[part] == c) - f * n_c) <= 1
    assert _split_digest(parts) == _split_digest(
        stratified_split(labels, fractions, seed=0, keys=keys)
    )


def test_stratified_split_needs_no_random_state():
    labels = np.array([0, 1] * 20)
    np.random.seed(0)
    a = stratified_split(labels, (0.5, 0.5))
    np.random.seed(123)
    np.random.rand(1000)
    b = stratified_split(labels.tolist(), [0.5, 0.5])
    assert _split_digest(a) == _split_digest(b)


def test_stratified_split_by_hand():
    # The rule written out again: within each class, rank by sha256(f"{seed}:{i}:{key}").
    labels = [0, 0, 0, 0, 1, 1, 0, 1, 0, 0]
    keys = list("abcdefghij")
    ranked = {
        c: sorted(
            (i for i in range(10) if labels[i] == c),
            key=lambda i: hashlib.sha256(f"3:{i}:{keys[i]}".encode()).hexdigest(),
        )
        for c in (0, 1)
    }
    # class 0: 7 examples, cuts ⌊3.5 + ½⌋ = 4, ⌊5.25 + ½⌋ = 5; class 1: 3, cuts ⌊1.5 + ½⌋ = 2, 2
    expected = (
        sorted(ranked[0][:4] + ranked[1][:2]),
        sorted(ranked[0][4:5]),
        sorted(ranked[0][5:] + ranked[1][2:]),
    )
    got = stratified_split(labels, (0.5, 0.25, 0.25), seed=3, keys=keys)
    assert [g.tolist() for g in got] == list(expected)


def test_stratified_split_depends_on_seed_and_keys():
    labels = np.zeros(100, dtype=int)
    base = stratified_split(labels, (0.8, 0.2))
    assert not np.array_equal(base[1], stratified_split(labels, (0.8, 0.2), seed=1)[1])
    keyed = stratified_split(labels, (0.8, 0.2), keys=[f"m{i}" for i in range(100)])
    assert not np.array_equal(base[1], keyed[1])


def test_stratified_split_keeps_equal_keys_together():
    """Duplicates go whole to one split; without grouping, the same data would straddle splits."""
    keys = [f"m{i % 37}" for i in range(300)]  # 37 messages, each repeated about 8 times
    labels = np.array([int(k[1:]) % 3 == 0 for k in keys], dtype=int)
    grouped = stratified_split(labels, (0.6, 0.2, 0.2), keys=keys, group_equal_keys=True)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(300))
    seen = [{keys[i] for i in part} for part in grouped]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert all(len(part) > 0 for part in grouped)
    plain = stratified_split(labels, (0.6, 0.2, 0.2), keys=keys)
    seen = [{keys[i] for i in part} for part in plain]
    assert seen[0] & seen[2]  # the control: the plain split leaks repeated messages


def test_stratified_split_is_pinned():
    # Any change to the rule (hash input, rounding, ordering) changes these digests.
    labels = np.array([i % 3 == 0 for i in range(60)], dtype=np.int64)
    parts = stratified_split(labels, (0.8, 0.1, 0.1), keys=[f"message {i}" for i in range(60)])
    assert [len(p) for p in parts] == [48, 6, 6]
    assert parts[2].tolist() == PINNED_SYNTHETIC_TEST


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"fractions": (0.8, 0.1)}, ValueError, "sum to 1"),
        ({"fractions": (1.0,)}, ValueError, "at least 2"),
        ({"fractions": (0.5, 0.5, 0.0)}, ValueError, "strictly between 0 and 1"),
        ({"fractions": (1.2, -0.2)}, ValueError, "strictly between 0 and 1"),
        ({"fractions": "0.5,0.5"}, TypeError, "sequence of numbers"),
        ({"fractions": (0.5, "0.5")}, TypeError, "numbers"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"seed": True}, ValueError, "seed must be a non-negative int"),
        ({"labels": [[0, 1], [1, 0]]}, ValueError, r"1-D.*shape \(2, 2\)"),
        ({"labels": []}, ValueError, "empty"),
        ({"labels": [0.0, 1.0, 1.0, 0.0]}, TypeError, "integer classes, got dtype float64"),
        ({"keys": ["a", "b"]}, ValueError, "4 labels, 2 keys"),
        ({"keys": ["a", "b", 3, "d"]}, TypeError, "keys must be str, got int 3"),
        ({"keys": "abcd"}, TypeError, "keys must be a sequence of str"),
    ],
)
def test_stratified_split_bad_input(kwargs, error, match):
    args = {"labels": [0, 1, 1, 0], "fractions": (0.5, 0.5), **kwargs}
    with pytest.raises(error, match=match):
        stratified_split(**args)


# --- the loaders on small stand-in files ----------------------------------------------------------


def _pin(monkeypatch, name: str, filename: str, payload: bytes, tmp_path: Path, url: str) -> None:
    """Replace the data set ``name`` by a stand-in pinned to ``payload``, cached in tmp_path."""
    original = getattr(data, name)
    fake = Dataset(original.name, filename, url, hashlib.sha256(payload).hexdigest(), len(payload))
    monkeypatch.setattr(data, name, fake)
    (tmp_path / filename).write_bytes(payload)


SMS_LINES = [
    "ham\tOk lar... Joking wif u oni...",
    'spam\tFREE entry: text "WIN"\tto 87121 ',  # a second tab and quotes stay in the text
    "ham\tU dun say so early hor...",
    "ham\tThat\x92s the way u feel",  # a stray Windows-1252 quote, kept
    "spam\tURGENT! You have won a \u00a3900 prize",
] + [f"ham\tmessage {i}" for i in range(15)]


def test_load_sms_spam_parses_and_splits(tmp_path, monkeypatch, closed_port_url):
    payload = ("\n".join(SMS_LINES) + "\n").encode("utf-8")
    _pin(monkeypatch, "SMS_SPAM_COLLECTION", "sms_spam_collection.tsv", payload, tmp_path, "x")
    monkeypatch.setattr(data, "_SMS_COUNTS", (20, 2))
    d = load_sms_spam(cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert isinstance(d, TextClassificationData) and d.class_names == ("ham", "spam")
    splits = (d.train, d.val, d.test)
    assert [len(s) for s in splits] == [16, 2, 2]  # ham 18 → 14 / 2 / 2, spam 2 → 2 / 0 / 0
    all_indices = sorted(i for s in splits for i in s.indices.tolist())
    assert all_indices == list(range(20))
    for s in splits:
        assert isinstance(s.texts, list) and s.labels.dtype == np.int64 and s.sources is None
        assert not s.labels.flags.writeable
        for text, label, i in zip(s.texts, s.labels.tolist(), s.indices.tolist(), strict=True):
            raw_label, _, raw_text = SMS_LINES[i].partition("\t")
            assert (text, label) == (raw_text, ["ham", "spam"].index(raw_label))
    texts = [t for s in splits for t in s.texts]
    assert 'FREE entry: text "WIN"\tto 87121 ' in texts and "That\x92s the way u feel" in texts
    assert "TextSplit(16 texts" in repr(d.train) and "train 16 / val 2 / test 2" in repr(d)
    again = load_sms_spam(cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert again.test.texts == d.test.texts


def test_load_sms_spam_checks_the_counts(tmp_path, monkeypatch, closed_port_url):
    payload = ("\n".join(SMS_LINES) + "\n").encode("utf-8")
    _pin(monkeypatch, "SMS_SPAM_COLLECTION", "sms_spam_collection.tsv", payload, tmp_path, "x")
    with pytest.raises(data.DatasetFormatError) as info:
        load_sms_spam(cache_dir=tmp_path, url=closed_port_url, progress=False)
    msg = str(info.value)
    assert "expected 5,574 messages (747 spam), got 20 messages (2 spam)" in msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("line", ["ham Ok lar", "Ham\tOk lar", "spam"])
def test_load_sms_spam_refuses_a_bad_line(tmp_path, monkeypatch, closed_port_url, line):
    payload = ("\n".join(SMS_LINES[:3] + [line]) + "\n").encode("utf-8")
    _pin(monkeypatch, "SMS_SPAM_COLLECTION", "sms_spam_collection.tsv", payload, tmp_path, "x")
    with pytest.raises(data.DatasetFormatError, match=r"line 4: expected 'ham<TAB>text'.*got"):
        load_sms_spam(cache_dir=tmp_path, url=closed_port_url, progress=False)


def test_load_sms_spam_offline_says_where_to_put_the_file(tmp_path, closed_port_url):
    with pytest.raises(DatasetUnavailableError) as info:
        load_sms_spam(cache_dir=tmp_path, url=closed_port_url, progress=False)
    msg = str(info.value)
    assert str(tmp_path / "sms_spam_collection.tsv") in msg
    assert data.SMS_SPAM_COLLECTION.url in msg and data.SMS_SPAM_COLLECTION.sha256 in msg


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"fractions": (0.5, 0.5)}, ValueError, "3 entries"),
        ({"fractions": (0.8, 0.1, 0.2)}, ValueError, "sum to 1"),
        ({"seed": -2}, ValueError, "seed"),
    ],
)
def test_text_loaders_refuse_bad_split_arguments(tmp_path, kwargs, error, match):
    for loader in (load_sms_spam, load_sentiment_sentences):
        with pytest.raises(error, match=match):
            loader(cache_dir=tmp_path, progress=False, **kwargs)  # refused before any download


def _sentiment_files(per_file: int = 20) -> dict[str, bytes]:
    files = {}
    for source in ("amazon", "imdb", "yelp"):
        lines = [
            f"{source} sentence {i} is {'good' if i % 2 else 'bad'}.\t{i % 2}"
            for i in range(per_file)
        ]
        files[source] = ("\n".join(lines) + "\n").encode("utf-8")
    # what the real files hold: trailing spaces before the tab (IMDb), a stray U+0085 (which
    # str.splitlines would take for a line break), a tab inside the sentence
    files["imdb"] = files["imdb"].replace(
        b"imdb sentence 3 is good.\t1", b"The script is\xc2\x85was there a script?  \t1"
    )
    files["yelp"] = files["yelp"].replace(b"yelp sentence 4 is bad.\t0", b"Tab\there, then bad.\t0")
    return files


SENTIMENT_NAMES = {"amazon": "SENTIMENT_AMAZON", "imdb": "SENTIMENT_IMDB", "yelp": "SENTIMENT_YELP"}


def test_load_sentiment_sentences_parses_and_splits(tmp_path, monkeypatch, closed_port_url):
    for source, payload in _sentiment_files().items():
        filename = getattr(data, SENTIMENT_NAMES[source]).filename
        _pin(monkeypatch, SENTIMENT_NAMES[source], filename, payload, tmp_path, "x")
    monkeypatch.setattr(data, "_SENTIMENT_COUNTS", (20, 10))
    d = load_sentiment_sentences(cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert d.class_names == ("negative", "positive")
    assert [len(s) for s in (d.train, d.val, d.test)] == [48, 6, 6]  # 10 per stratum → 8 / 1 / 1
    texts = {}
    for s in (d.train, d.val, d.test):
        for text, label, i, source in zip(
            s.texts, s.labels.tolist(), s.indices.tolist(), s.sources, strict=True
        ):
            texts[i] = (text, label, source)
    assert sorted(texts) == list(range(60))
    assert [texts[i][2] for i in range(60)] == ["amazon"] * 20 + ["imdb"] * 20 + ["yelp"] * 20
    assert texts[23] == ("The script is\x85was there a script?", 1, "imdb")
    assert texts[44] == ("Tab\there, then bad.", 0, "yelp")
    assert texts[0] == ("amazon sentence 0 is bad.", 0, "amazon")
    for s in (d.train, d.val, d.test):
        assert s.labels.sum() * 2 == len(s)
        assert s.sources.count("imdb") * 3 == len(s)


def test_load_sentiment_sentences_checks_each_file(tmp_path, monkeypatch, closed_port_url):
    files = _sentiment_files()
    files["yelp"] = files["yelp"].replace(b"\t1\n", b"\t0\n", 1)  # 4 positive, not 5
    for source, payload in files.items():
        filename = getattr(data, SENTIMENT_NAMES[source]).filename
        _pin(monkeypatch, SENTIMENT_NAMES[source], filename, payload, tmp_path, "x")
    monkeypatch.setattr(data, "_SENTIMENT_COUNTS", (20, 10))
    with pytest.raises(data.DatasetFormatError) as info:
        load_sentiment_sentences(cache_dir=tmp_path, url=closed_port_url, progress=False)
    msg = str(info.value)
    assert (
        "(Yelp)" in msg
        and "expected 20 sentences (10 positive), got 20 sentences (9 positive)" in msg
    )


@pytest.mark.parametrize("line", [b"no tab at all", b"a sentence\t2", b"   \t1"])
def test_load_sentiment_sentences_refuses_a_bad_line(tmp_path, monkeypatch, closed_port_url, line):
    files = _sentiment_files()
    files["amazon"] = line + b"\n" + files["amazon"]
    for source, payload in files.items():
        filename = getattr(data, SENTIMENT_NAMES[source]).filename
        _pin(monkeypatch, SENTIMENT_NAMES[source], filename, payload, tmp_path, "x")
    with pytest.raises(data.DatasetFormatError, match=r"line 1: expected 'sentence<TAB>0'"):
        load_sentiment_sentences(cache_dir=tmp_path, url=closed_port_url, progress=False)


def test_load_sentiment_sentences_from_the_zip(server, tmp_path, monkeypatch):
    files = _sentiment_files()
    members = {}
    for source, payload in files.items():
        original = getattr(data, SENTIMENT_NAMES[source])
        members[original.member] = payload
        fake = Dataset(
            original.name,
            original.filename,
            "http://127.0.0.1:9/unused.zip",
            hashlib.sha256(payload).hexdigest(),
            len(payload),
            member=original.member,
        )
        monkeypatch.setattr(data, SENTIMENT_NAMES[source], fake)
    monkeypatch.setattr(data, "_SENTIMENT_COUNTS", (20, 10))
    url = server.serve("/sentiment+labelled+sentences.zip", make_zip(members))
    cache = tmp_path / "cache"
    d = load_sentiment_sentences(cache_dir=cache, url=url, progress=False)
    assert len(d.train) + len(d.val) + len(d.test) == 60
    assert sorted(p.name for p in cache.iterdir()) == [
        "amazon_cells_labelled.txt",
        "imdb_labelled.txt",
        "yelp_labelled.txt",
    ]
    assert (cache / "imdb_labelled.txt").read_bytes() == files["imdb"]
    n = len(server.requests)
    load_sentiment_sentences(cache_dir=cache, url=url, progress=False)
    assert len(server.requests) == n  # cached


BABI_STORIES = [
    [
        "1 Mary moved to the bathroom.",
        "2 John went to the hallway.",
        "3 Where is Mary? \tbathroom\t1",
        "4 Daniel went back to the hallway.",
        "5 Sandra moved to  the garden.",
        "6 Where is Daniel? \thallway\t4",
    ],
    [
        "1 Sandra travelled to the office.",
        "2 Sandra went to the bathroom.",
        "3 Where is Sandra? \tbathroom\t2",
    ],
] + [[f"1 John went to room{k}.", f"2 Where is John? \troom{k}\t1"] for k in range(8)]


def _babi_payload(stories) -> bytes:
    return ("\n".join(line for story in stories for line in story) + "\n").encode("utf-8")


def _pin_babi(monkeypatch, tmp_path, train_stories, test_stories=None) -> None:
    test_stories = BABI_STORIES[:2] if test_stories is None else test_stories
    _pin(
        monkeypatch,
        "BABI_QA1_TRAIN",
        "babi_qa1_train.txt",
        _babi_payload(train_stories),
        tmp_path,
        "x",
    )
    _pin(
        monkeypatch,
        "BABI_QA1_TEST",
        "babi_qa1_test.txt",
        _babi_payload(test_stories),
        tmp_path,
        "x",
    )


def test_load_babi_parses_stories_and_splits_by_story(tmp_path, monkeypatch, closed_port_url):
    _pin_babi(monkeypatch, tmp_path, BABI_STORIES)
    monkeypatch.setattr(data, "_BABI_COUNTS", {"train": (11, 10), "test": (3, 2)})
    d = load_babi(cache_dir=tmp_path, url=closed_port_url, progress=False, val_fraction=0.2)
    assert isinstance(d, BabiData) and d.task == 1
    assert (len(d.train), len(d.val), len(d.test)) == (9, 2, 3)
    assert {q.story_id for q in d.val} == {4, 5}  # 20 % of 10 stories, the same on every run
    assert not {q.story_id for q in d.train} & {q.story_id for q in d.val}
    assert d.test[1] == BabiQuestion(
        story=(
            "Mary moved to the bathroom.",
            "John went to the hallway.",
            "Daniel went back to the hallway.",
            "Sandra moved to  the garden.",
        ),
        question="Where is Daniel?",
        answer="hallway",
        supporting=(2,),  # line 4 is the third sentence: line 3 was a question
        story_id=0,
    )
    assert d.test[0].story == ("Mary moved to the bathroom.", "John went to the hallway.")
    assert d.test[2].story_id == 1 and d.test[2].supporting == (1,)
    for q in d.train + d.val + d.test:
        assert q.answer in q.story[q.supporting[0]]
    assert "test 3 questions, from" in repr(d)
    again = load_babi(cache_dir=tmp_path, url=closed_port_url, progress=False, val_fraction=0.2)
    assert again == d


@pytest.mark.parametrize(
    "story, match",
    [
        (["1 Mary moved to the bathroom.", "2 Where is Mary? \tkitchen\t1"], "answer 'kitchen'"),
        (["1 Mary moved to the bathroom.", "2 Where is Mary? \tbathroom\t2"], "supporting facts"),
        (["1 Mary moved to the bathroom.", "2 Where is Mary? \tbathroom"], "3 fields|got 2 fields"),
        (["1 Mary moved to the bathroom.", "3 Where is Mary? \tbathroom\t1"], "line number 2"),
        (["Mary moved to the bathroom."], "'<number> <text>'"),
    ],
)
def test_load_babi_refuses_a_bad_story(tmp_path, monkeypatch, closed_port_url, story, match):
    _pin_babi(monkeypatch, tmp_path, BABI_STORIES[:1] + [story])
    with pytest.raises(data.DatasetFormatError, match=match):
        load_babi(cache_dir=tmp_path, url=closed_port_url, progress=False)


def test_load_babi_checks_the_counts(tmp_path, monkeypatch, closed_port_url):
    _pin_babi(monkeypatch, tmp_path, BABI_STORIES)
    with pytest.raises(
        data.DatasetFormatError,
        match="expected 10,000 questions in 2,000 stories, got 11 questions in 10",
    ):
        load_babi(cache_dir=tmp_path, url=closed_port_url, progress=False)


@pytest.mark.parametrize("task", [2, 0, 20, "1", 1.0, True, None])
def test_load_babi_only_task_1(tmp_path, task):
    with pytest.raises(ValueError, match=r"only bAbI task 1 .* got task="):
        load_babi(task=task, cache_dir=tmp_path, progress=False)


@pytest.mark.parametrize("bad", [0, 1, 1.5, float("nan")])
def test_load_babi_val_fraction(tmp_path, bad):
    with pytest.raises(ValueError, match="val_fraction must be strictly between 0 and 1"):
        load_babi(cache_dir=tmp_path, progress=False, val_fraction=bad)


def test_load_babi_mirror_folder(server, tmp_path, monkeypatch):
    train, test = _babi_payload(BABI_STORIES), _babi_payload(BABI_STORIES[:2])
    for name, payload in (("BABI_QA1_TRAIN", train), ("BABI_QA1_TEST", test)):
        original = getattr(data, name)
        fake = Dataset(
            original.name,
            original.filename,
            original.url,
            hashlib.sha256(payload).hexdigest(),
            len(payload),
        )
        monkeypatch.setattr(data, name, fake)
        server.serve("/mirror/" + original.url.rsplit("/", 1)[1], payload)
    monkeypatch.setattr(data, "_BABI_COUNTS", {"train": (11, 10), "test": (3, 2)})
    d = load_babi(cache_dir=tmp_path / "cache", url=server.url("/mirror/"), progress=False)
    assert len(d.test) == 3
    assert sorted(server.requests) == [
        "/mirror/qa1_single-supporting-fact_test.txt",
        "/mirror/qa1_single-supporting-fact_train.txt",
    ]


# --- the module's imports and exports -------------------------------------------------------------


def test_data_module_imports_neither_tensorflow_nor_sklearn():
    code = (
        "import lessons_lib.data, sys\n"
        "print(sorted({'tensorflow', 'keras', 'sklearn'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_new_names_are_exported():
    import lessons_lib

    for name in (
        "load_sms_spam",
        "load_sentiment_sentences",
        "load_babi",
        "stratified_split",
        "TextClassificationData",
        "TextSplit",
        "BabiQuestion",
        "BabiData",
    ):
        assert getattr(lessons_lib, name) is getattr(data, name)
        assert name in data.__all__


# --- the real files, when they are on disk (CI seeds the cache) -----------------------------------

REAL_DATASETS = {
    "sms": [data.SMS_SPAM_COLLECTION],
    "sentiment": [data.SENTIMENT_AMAZON, data.SENTIMENT_IMDB, data.SENTIMENT_YELP],
    "babi": [data.BABI_QA1_TRAIN, data.BABI_QA1_TEST],
}


def _find_real(dataset: Dataset) -> tuple[Path | None, str]:
    """A verified copy of ``dataset``: in $LESSONS_DATA_DIR, ../shared/data (where the sentiment
    files sit in sentiment_labelled/) or the per-user cache."""
    folders = []
    if os.environ.get(data.DATA_DIR_ENV):
        folders.append(Path(os.environ[data.DATA_DIR_ENV]).expanduser())
    folders += [REPO_ROOT.parent / "shared" / "data", data.default_cache_dir()]
    notes = []
    for folder in folders:
        for path in (folder / dataset.filename, folder / "sentiment_labelled" / dataset.filename):
            if not path.is_file():
                continue
            if hashlib.sha256(path.read_bytes()).hexdigest() != dataset.sha256:
                notes.append(f"{path}: sha256 mismatch")
                continue
            return path, ""
    where = ", ".join(map(str, folders))
    return None, "; ".join([f"{dataset.filename}: not in {where}", *notes])


# Evaluated at import, before the autouse fixture clears LESSONS_DATA_DIR.
_REAL_FILES = {key: [_find_real(ds) for ds in datasets] for key, datasets in REAL_DATASETS.items()}


@pytest.fixture
def real_cache(request, tmp_path) -> Path:
    """A cache folder holding links to the verified real files of one loader, or a skip."""
    found = _REAL_FILES[request.param]
    missing = [why for path, why in found if path is None]
    if missing:
        pytest.skip(
            f"real data not on disk ({'; '.join(missing)}); set {data.DATA_DIR_ENV} to a folder "
            "holding it (CI seeds the cache from ../shared/data)"
        )
    cache = tmp_path / "real"
    cache.mkdir()
    for (path, _), ds in zip(found, REAL_DATASETS[request.param], strict=True):
        (cache / ds.filename).symlink_to(path)
    return cache


def _indices_digest(indices) -> str:
    return hashlib.sha256(",".join(map(str, sorted(indices))).encode()).hexdigest()


@pytest.mark.parametrize("real_cache", ["sms"], indirect=True)
def test_real_sms_spam(real_cache, closed_port_url, capsys):
    d = load_sms_spam(cache_dir=real_cache, url=closed_port_url, progress=False)  # never downloads
    sizes = [(len(s), int(s.labels.sum())) for s in (d.train, d.val, d.test)]
    assert sizes == [(4460, 598), (556, 74), (558, 75)]
    assert sum(n for n, _ in sizes) == 5574 and sum(s for _, s in sizes) == 747
    assert _indices_digest(d.test.indices.tolist()) == PINNED["sms test"]
    assert _indices_digest(d.val.indices.tolist()) == PINNED["sms val"]
    assert d.train.texts[0].startswith("Go until jurong point, crazy..")
    assert d.class_names == ("ham", "spam")
    # repeated messages (5,171 distinct of 5,574) never straddle two splits
    texts = [set(s.texts) for s in (d.train, d.val, d.test)]
    assert sum(len(t) for t in texts) == 5171
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("real_cache", ["sentiment"], indirect=True)
def test_real_sentiment_sentences(real_cache, closed_port_url):
    d = load_sentiment_sentences(cache_dir=real_cache, url=closed_port_url, progress=False)
    assert [len(s) for s in (d.train, d.val, d.test)] == [2400, 300, 300]
    for s, n in ((d.train, 400), (d.val, 50), (d.test, 50)):
        pairs = list(zip(s.sources, s.labels.tolist(), strict=True))
        for source in ("amazon", "imdb", "yelp"):
            assert pairs.count((source, 0)) == pairs.count((source, 1)) == n
    assert _indices_digest(d.test.indices.tolist()) == PINNED["sentiment test"]
    assert _indices_digest(d.val.indices.tolist()) == PINNED["sentiment val"]
    texts = d.train.texts + d.val.texts + d.test.texts
    assert all(t == t.strip() and "\t" not in t and t for t in texts)


@pytest.mark.parametrize("real_cache", ["babi"], indirect=True)
def test_real_babi(real_cache, closed_port_url):
    d = load_babi(cache_dir=real_cache, url=closed_port_url, progress=False)
    assert (len(d.train), len(d.val), len(d.test)) == (9000, 1000, 1000)
    train_ids, val_ids = {q.story_id for q in d.train}, {q.story_id for q in d.val}
    assert (len(train_ids), len(val_ids), len({q.story_id for q in d.test})) == (1800, 200, 200)
    assert not train_ids & val_ids and train_ids | val_ids == set(range(2000))
    assert _indices_digest(val_ids) == PINNED["babi val stories"]
    first = d.train[0]
    assert first.story == ("Mary moved to the bathroom.", "John went to the hallway.")
    assert (first.question, first.answer, first.supporting) == ("Where is Mary?", "bathroom", (0,))
    for q in d.train + d.val + d.test:
        assert len(q.supporting) == 1 and q.answer in q.story[q.supporting[0]]
    assert {len(q.story) for q in d.test} == {2, 4, 6, 8, 10}


# --- Spanish-English pairs (lesson 13) ------------------------------------------------------------

SPA_LINES = [
    "Go.\tVe.",
    "Go.\tVete.",
    "Hi.\tHola.",
    "I could kill you.\tTe podría matar.",
    "Run!\t¡Corre!",
    "Go.\tVaya.",  # a later translation of an earlier sentence joins its references
    "I could kill you.\tPodría matarte.",
    "Tom isn't here right now.\tTom no está aquí ahora.",
] + [f"Sentence number {i} is here.\tLa frase número {i} está aquí." for i in range(12)]
SPA_MEMBER = "spa-eng/spa.txt"


def _spa_payload(lines=SPA_LINES) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _pin_spa(monkeypatch, payload: bytes, url: str = "x") -> Dataset:
    fake = Dataset(
        data.SPA_ENG.name,
        "spa-eng.txt",
        url,
        hashlib.sha256(payload).hexdigest(),
        len(payload),
        member=SPA_MEMBER,
    )
    monkeypatch.setattr(data, "SPA_ENG", fake)
    return fake


def test_load_spa_eng_groups_translations_and_splits_by_sentence(
    tmp_path, monkeypatch, closed_port_url
):
    payload = _spa_payload()
    _pin_spa(monkeypatch, payload)
    (tmp_path / "spa-eng.txt").write_bytes(payload)
    monkeypatch.setattr(data, "_SPA_ENG_COUNTS", (20, 17))
    d = data.load_spa_eng(cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert isinstance(d, data.TranslationData)
    assert (d.source_language, d.target_language, d.max_source_words) == ("en", "es", None)
    splits = (d.train, d.val, d.test)
    assert [len(s) for s in splits] == [14, 1, 2]  # 17 sentences: cuts at ⌊13.6 + ½⌋, ⌊15.3 + ½⌋
    assert sum(s.n_pairs for s in splits) == 20
    sources = [s for split in splits for s in split.sources]
    assert len(sources) == len(set(sources)) == 17  # each English sentence in exactly one split
    distinct = list(dict.fromkeys(line.split("\t")[0] for line in SPA_LINES))
    for split in splits:
        assert split.indices.tolist() == sorted(split.indices.tolist())
        assert not split.indices.flags.writeable
        for source, refs, i in zip(split.sources, split.references, split.indices.tolist()):
            assert source == distinct[i]
            assert refs == tuple(
                ln.split("\t")[1] for ln in SPA_LINES if ln.startswith(source + "\t")
            )
    everything = {s: r for split in splits for s, r in zip(split.sources, split.references)}
    assert everything["Go."] == ("Ve.", "Vete.", "Vaya.")
    assert everything["I could kill you."] == ("Te podría matar.", "Podría matarte.")
    src, tgt = d.train.pairs()
    assert len(src) == len(tgt) == d.train.n_pairs
    assert list(zip(src, tgt)) == [
        (s, t) for s, refs in zip(d.train.sources, d.train.references) for t in refs
    ]
    assert "TranslationSplit(14 sentences" in repr(d.train)
    assert "en → es: train 14 / val 1 / test 2 sentences" in repr(d)
    # the restriction keeps a subset of each split: a sentence never changes split
    short = data.load_spa_eng(
        cache_dir=tmp_path, url=closed_port_url, progress=False, max_source_words=2
    )
    assert short.max_source_words == 2 and "≤ 2 words" in repr(short)
    for full, part in zip(splits, (short.train, short.val, short.test)):
        assert set(part.sources) <= set(full.sources)
        assert all(len(s.split()) <= 2 for s in part.sources)
        assert set(part.sources) == {s for s in full.sources if len(s.split()) <= 2}
    assert sum(len(s) for s in (short.train, short.val, short.test)) == 3  # Go. Hi. Run!
    # another seed: another split, still by sentence
    other = data.load_spa_eng(cache_dir=tmp_path, url=closed_port_url, progress=False, seed=1)
    assert other.test.sources != d.test.sources


def test_load_spa_eng_downloads_the_zip_member(server, tmp_path, monkeypatch):
    payload = _spa_payload()
    archive = make_zip({SPA_MEMBER: payload, "spa-eng/_about.txt": b"Attribution"})
    _pin_spa(monkeypatch, payload, server.serve("/spa-eng.zip", archive))
    monkeypatch.setattr(data, "_SPA_ENG_COUNTS", (20, 17))
    d = data.load_spa_eng(cache_dir=tmp_path / "cache", progress=False)
    assert len(d.train) + len(d.val) + len(d.test) == 17
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["spa-eng.txt"]
    assert (tmp_path / "cache" / "spa-eng.txt").read_bytes() == payload
    assert server.requests == ["/spa-eng.zip"]


def test_load_spa_eng_refuses_a_mirror_whose_member_differs(server, tmp_path, monkeypatch):
    """A mirror (e.g. TensorFlow's spa-eng.zip) whose member is not byte-identical is refused;
    the message names the pinned archive and member to download by hand."""
    payload = _spa_payload()
    fake = _pin_spa(monkeypatch, payload, "https://example.invalid/pinned/spa-eng.zip")
    other = make_zip({SPA_MEMBER: payload.replace(b"Hola", b"HOLA")})
    with pytest.raises(DatasetChecksumError) as info:
        data.load_spa_eng(cache_dir=tmp_path, url=server.serve("/tf.zip", other), progress=False)
    msg = str(info.value)
    assert f"its member {SPA_MEMBER!r} is corrupt" in msg and fake.sha256 in msg
    assert f"download the zip archive {fake.url}, extract its member {SPA_MEMBER!r}" in msg
    assert list(tmp_path.iterdir()) == []


def test_load_spa_eng_checks_the_counts(tmp_path, monkeypatch, closed_port_url):
    payload = _spa_payload()
    _pin_spa(monkeypatch, payload)
    (tmp_path / "spa-eng.txt").write_bytes(payload)
    with pytest.raises(data.DatasetFormatError) as info:
        data.load_spa_eng(cache_dir=tmp_path, url=closed_port_url, progress=False)
    assert (
        "expected 118,964 pairs (102,904 distinct English sentences), got 20 pairs (17 distinct"
        in str(info.value)
    )


@pytest.mark.parametrize("line", ["Go. Ve.", "Go.\tVe.\tVete.", "\tVe.", "Go.\t "])
def test_load_spa_eng_refuses_a_bad_line(tmp_path, monkeypatch, closed_port_url, line):
    payload = _spa_payload(SPA_LINES[:2] + [line])
    _pin_spa(monkeypatch, payload)
    (tmp_path / "spa-eng.txt").write_bytes(payload)
    with pytest.raises(data.DatasetFormatError, match=r"line 3: expected 'English<TAB>Spanish'"):
        data.load_spa_eng(cache_dir=tmp_path, url=closed_port_url, progress=False)


def test_load_spa_eng_offline_says_where_to_put_the_file(tmp_path, closed_port_url):
    with pytest.raises(DatasetUnavailableError) as info:
        data.load_spa_eng(cache_dir=tmp_path, url=closed_port_url, progress=False)
    msg = str(info.value)
    assert str(tmp_path / "spa-eng.txt") in msg and f"extract its member {SPA_MEMBER!r}" in msg
    assert data.SPA_ENG.sha256 in msg and "8,042,772 bytes" in msg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_source_words": 0}, "max_source_words must be a positive int or None"),
        ({"max_source_words": 2.5}, "max_source_words must be a positive int or None"),
        ({"max_source_words": True}, "max_source_words must be a positive int or None"),
        ({"fractions": (0.5, 0.5)}, "3 entries"),
        ({"seed": -1}, "seed"),
    ],
)
def test_load_spa_eng_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_spa_eng(cache_dir=tmp_path, progress=False, **kwargs)


def test_spa_eng_is_pinned():
    ds = data.SPA_ENG
    assert (ds.filename, ds.size, ds.member) == ("spa-eng.txt", 8_042_772, SPA_MEMBER)
    assert ds.sha256 == "6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c"
    assert ds.url == (
        "https://raw.githubusercontent.com/Hoangduc212001/hoang/"
        "2cfd26f9551f5c2d614e8000500891801840a438/spa-eng.zip"
    )
    import lessons_lib

    for name in ("SPA_ENG", "TranslationSplit", "TranslationData", "load_spa_eng"):
        assert getattr(lessons_lib, name) is getattr(data, name)
        assert name in data.__all__


REAL_DATASETS["spa_eng"] = [data.SPA_ENG]
_REAL_FILES["spa_eng"] = [_find_real(data.SPA_ENG)]
# The fixed split of the English sentences (seed 0, default fractions): sha256 of the sorted
# indices, comma-separated, as for PINNED above.
PINNED_SPA_ENG = {
    "test": "8ef6a8cfed1a8fb45f4c8964c9af6a7c67f41822700f3e852a5303998de64e57",
    "val": "0796a5e3584e1f72aea875db8e29a324064292875e0f95071679cfbeccc417d6",
    "test, ≤ 5 words": "cdbac69b037196e2495d542b88065f436fd384a1883d99007b457a605d105abd",
}


@pytest.mark.parametrize("real_cache", ["spa_eng"], indirect=True)
def test_real_spa_eng(real_cache, closed_port_url, capsys):
    d = data.load_spa_eng(cache_dir=real_cache, url=closed_port_url, progress=False)
    splits = (d.train, d.val, d.test)
    assert [len(s) for s in splits] == [82_323, 10_291, 10_290]
    assert [s.n_pairs for s in splits] == [95_248, 11_826, 11_890]
    assert sum(s.n_pairs for s in splits) == 118_964
    assert _indices_digest(d.test.indices.tolist()) == PINNED_SPA_ENG["test"]
    assert _indices_digest(d.val.indices.tolist()) == PINNED_SPA_ENG["val"]
    sources = [set(s.sources) for s in splits]
    assert sum(map(len, sources)) == 102_904
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert d.train.sources[:2] == ["Go.", "Hi."]
    assert d.train.references[0] == ("Ve.", "Vete.", "Vaya.", "Váyase.")
    assert max(len(r) for s in splits for r in s.references) == 24
    short = data.load_spa_eng(
        cache_dir=real_cache, url=closed_port_url, progress=False, max_source_words=5
    )
    parts = (short.train, short.val, short.test)
    assert [len(s) for s in parts] == [33_492, 4_236, 4_177]
    assert [s.n_pairs for s in parts] == [40_786, 5_099, 5_088]
    assert _indices_digest(short.test.indices.tolist()) == PINNED_SPA_ENG["test, ≤ 5 words"]
    assert set(short.test.indices.tolist()) <= set(d.test.indices.tolist())
    assert capsys.readouterr().out == ""
