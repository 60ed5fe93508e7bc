"""Course data sets: download once, verify, cache — and work offline once cached.

A data set is described by a `Dataset` (file name, URL, size, sha256). `fetch` returns
the path of a verified local copy, downloading it only when the cache holds no good copy:

1. The cache folder is ``cache_dir`` if given, else ``$LESSONS_DATA_DIR`` if set, else
   ``$XDG_CACHE_HOME/llm-course`` (default ``~/.cache/llm-course``).
2. A cached file is used only if ``sha256(file) == dataset.sha256``; a corrupt or truncated copy is
   reported (one printed line) and downloaded again.
3. A download goes to a temporary file in the cache folder, is verified (size and sha256) *before*
   ``os.replace`` moves it into place, and is discarded if it does not match. The cache therefore
   only ever holds verified files.

The one data set the course trains on is Tiny Shakespeare (`TINY_SHAKESPEARE`, 1,115,394 bytes
of public-domain Shakespeare from karpathy/char-rnn; lesson 01 §1 introduces it).
`load_tiny_shakespeare` returns it as a ``str`` and `train_val_split` splits it the way
nanoGPT does (lesson 01 §1, lesson 09 §1): with n characters, the first ⌊0.9 · n⌋ are for training
and the rest for validation (1,003,854 / 111,540 characters).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import math
import numbers
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetChecksumError",
    "DatasetUnavailableError",
    "TINY_SHAKESPEARE",
    "DATA_DIR_ENV",
    "default_cache_dir",
    "cache_path",
    "fetch",
    "load_tiny_shakespeare",
    "train_val_split",
]

#: Environment variable naming the folder that holds (or receives) the data files.
DATA_DIR_ENV = "LESSONS_DATA_DIR"

_CHUNK = 1 << 16
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A downloadable file, pinned by size and sha256 (what `fetch` downloads; lesson 01 §1
    uses one).

    Attributes:
        name: a human-readable name used in messages (``"Tiny Shakespeare"``).
        filename: the file's name in the cache folder (no directories).
        url: where to download it from.
        sha256: the expected SHA-256 of the file, 64 lowercase hex digits.
        size: the expected size in bytes.
    """

    name: str
    filename: str
    url: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if (
            not isinstance(self.filename, str)
            or not self.filename
            or Path(self.filename).name != self.filename
            or self.filename in (".", "..")
        ):
            raise ValueError(
                "Dataset.filename must be a bare file name without directories, "
                f"got {self.filename!r}"
            )
        if not isinstance(self.sha256, str) or not _SHA256_RE.fullmatch(self.sha256):
            raise ValueError(f"Dataset.sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"Dataset.size must be a non-negative int (bytes), got {self.size!r}")


#: Tiny Shakespeare: ``data/tinyshakespeare/input.txt`` from the public GitHub repository
#: karpathy/char-rnn.
TINY_SHAKESPEARE = Dataset(
    name="Tiny Shakespeare",
    filename="tinyshakespeare.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    size=1_115_394,
)


class DatasetError(Exception):
    """Base class of the errors raised by `fetch` (behind lesson 01 §1's
    `load_tiny_shakespeare`)."""


class DatasetChecksumError(DatasetError, ValueError):
    """A downloaded file did not match the pinned size/sha256; it was not written to the cache."""

    def __init__(
        self,
        message: str,
        *,
        expected_sha256: str,
        got_sha256: str,
        expected_size: int,
        got_size: int,
    ) -> None:
        super().__init__(message)
        self.expected_sha256 = expected_sha256
        self.got_sha256 = got_sha256
        self.expected_size = expected_size
        self.got_size = got_size


class DatasetUnavailableError(DatasetError, RuntimeError):
    """The file is not cached and could not be downloaded (offline, HTTP error, ...)."""

    def __init__(self, message: str, *, path: Path, url: str) -> None:
        super().__init__(message)
        self.path = path
        self.url = url


def default_cache_dir() -> Path:
    """The cache folder used when no ``cache_dir`` is given: where lesson 01 §1's corpus is kept.

    ``$LESSONS_DATA_DIR`` if set (and non-empty), else ``$XDG_CACHE_HOME/llm-course``, else
    ``~/.cache/llm-course``.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llm-course"


def cache_path(dataset: Dataset, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``dataset`` lives in the cache: ``cache_dir`` (or `default_cache_dir`) /
    ``dataset.filename``.

    The download machinery behind `load_tiny_shakespeare` (lesson 01 §1).
    """
    if not isinstance(dataset, Dataset):
        given = f"{type(dataset).__name__} {dataset!r}"[:160]
        raise TypeError(f"dataset must be a lessons_lib.data.Dataset, got {given}")
    if cache_dir is None:
        folder = default_cache_dir()
    elif isinstance(cache_dir, (str, os.PathLike)):
        folder = Path(cache_dir).expanduser()
    else:
        raise TypeError(
            f"cache_dir must be a str, a path or None, got {type(cache_dir).__name__} {cache_dir!r}"
        )
    return folder / dataset.filename


def _file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _unavailable(dataset: Dataset, path: Path, url: str, reason: object) -> DatasetUnavailableError:
    message = (
        f"Could not download {dataset.name} from {url}: {reason}\n"
        f"To work offline, download the file on a machine with internet access and put it at\n"
        f"    {path}\n"
        f"or put it in any folder and set the environment variable {DATA_DIR_ENV} to that folder.\n"
        f"Expected file: {dataset.filename}, {dataset.size:,} bytes, sha256 {dataset.sha256}\n"
        f"(source: {dataset.url})"
    )
    return DatasetUnavailableError(message, path=path, url=url)


def _download(
    dataset: Dataset, url: str, out, path: Path, progress: bool, timeout: float
) -> tuple[str, int]:
    """Stream ``url`` into the open binary file ``out``; return (sha256, bytes written).

    Network failures become `DatasetUnavailableError`; reading stops early (and the size
    check in `fetch` refuses the file) if the server sends more than ``dataset.size`` bytes.
    """
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "lessons_lib (LLM course)"})
    h = hashlib.sha256()
    size = 0
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # an HTTPError holds the open response
        reason = (
            e.reason
            if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError)
            else e
        )
        raise _unavailable(dataset, path, url, reason) from e
    with (
        response,
        tqdm(
            total=dataset.size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dataset.filename,
            disable=not progress,
            file=sys.stdout,
            leave=False,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as e:
                raise _unavailable(
                    dataset, path, url, f"the connection broke after {size:,} bytes ({e!r})"
                ) from e
            if not chunk:
                break
            out.write(chunk)
            h.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
            if (
                size > dataset.size
            ):  # not the file we want (an HTML error page, another file): stop early
                break
    return h.hexdigest(), size


def fetch(
    dataset: Dataset,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Return the path of a verified local copy of ``dataset``, downloading it if needed.

    What `load_tiny_shakespeare` (lesson 01 §1) calls; the module docstring describes the
    cache.

    Args:
        dataset: what to fetch (e.g. `TINY_SHAKESPEARE`).
        cache_dir: the folder to look in and download to; default `default_cache_dir`
            (``$LESSONS_DATA_DIR``, else the per-user cache folder). Created if missing.
        url: download from here instead of ``dataset.url`` (a mirror); the file is still checked
            against ``dataset.sha256``.
        progress: show a download progress bar (printed to stdout).
        timeout: socket timeout in seconds for the download.

    Returns:
        ``cache_dir / dataset.filename``, whose sha256 matches ``dataset.sha256``.

    Raises:
        DatasetChecksumError: the download's size or sha256 is wrong; nothing was written to the
            cache.
        DatasetUnavailableError: the file is not cached and the download failed (offline, HTTP
            error); the message says where to put the file by hand.
    """
    path = cache_path(dataset, cache_dir)
    if url is None:
        url = dataset.url
    elif not isinstance(url, str):
        raise TypeError(f"url must be a str or None, got {type(url).__name__} {url!r}")

    if path.is_file():
        got_sha, got_size = _file_digest(path)
        if got_sha == dataset.sha256:
            return path
        print(
            f"{path} is corrupt or truncated ({got_size:,} bytes, sha256 {got_sha[:12]}...; "
            f"expected {dataset.size:,} bytes, sha256 {dataset.sha256[:12]}...): "
            "downloading it again."
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{dataset.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got_sha, got_size = _download(dataset, url, out, path, progress, timeout)
        if got_sha != dataset.sha256 or got_size != dataset.size:
            if got_size < dataset.size:
                what, got = "truncated", f"{got_size:,} bytes, sha256 {got_sha}"
            elif got_size > dataset.size:
                what, got = "too large", f"more than {dataset.size:,} bytes (stopped reading)"
            else:
                what, got = "corrupt", f"{got_size:,} bytes, sha256 {got_sha}"
            raise DatasetChecksumError(
                f"Refusing the download of {dataset.name} from {url}: the file is {what}.\n"
                f"    expected {dataset.size:,} bytes, sha256 {dataset.sha256}\n"
                f"    got      {got}\n"
                f"Nothing was written to {path.parent}. Try again, or download the file from "
                f"{dataset.url} yourself and put it at {path}.",
                expected_sha256=dataset.sha256,
                got_sha256=got_sha,
                expected_size=dataset.size,
                got_size=got_size,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace the temp name no longer exists
    return path


def load_tiny_shakespeare(
    cache_dir: str | os.PathLike[str] | None = None, url: str | None = None, progress: bool = True
) -> str:
    """The Tiny Shakespeare corpus (1,115,394 characters) as one string.

    Introduced in lesson 01 §1; lessons 00 §3, 02 §3, 09 §1 and 10 §0 load it too.

    Downloads and caches the file on first use (see `fetch` for the cache folder and the
    checks).

    Args:
        cache_dir: folder holding ``tinyshakespeare.txt``; default ``$LESSONS_DATA_DIR`` or the
            per-user cache folder.
        url: a mirror to download from instead of GitHub.
        progress: show a progress bar while downloading.
    """
    path = fetch(TINY_SHAKESPEARE, cache_dir=cache_dir, url=url, progress=progress)
    # bytes, not read_text: keep line endings exactly as stored
    return path.read_bytes().decode("utf-8")


def train_val_split(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """Split ``text`` into its first ``int(len(text) * train_fraction)`` characters and the rest.

    This is nanoGPT's split (no shuffling: the validation text is the end of the corpus; lesson 01
    §1 and lesson 09 §1). For Tiny Shakespeare it gives 1,003,854 training and 111,540 validation
    characters.

    Args:
        text: the corpus.
        train_fraction: share of characters for training, strictly between 0 and 1.

    Returns:
        ``(train_text, val_text)``, whose concatenation is ``text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real):
        raise TypeError(
            f"train_fraction must be a float in (0, 1), got {type(train_fraction).__name__} "
            f"{train_fraction!r}"
        )
    if not (math.isfinite(train_fraction) and 0 < train_fraction < 1):
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction!r}")
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]
