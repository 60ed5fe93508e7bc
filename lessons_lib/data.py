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
4. A `Dataset` with a ``member`` names one file inside a zip archive: the archive is downloaded to
   a temporary file, the member is extracted and verified (its own size and sha256: the archive's
   bytes are not pinned), and only the member is written into the cache.

The data sets:

* Tiny Shakespeare (`TINY_SHAKESPEARE`, 1,115,394 bytes of public-domain Shakespeare from
  karpathy/char-rnn; lesson 01 §1 introduces it). `load_tiny_shakespeare` returns it as a ``str``
  and `train_val_split` splits it the way nanoGPT does (lesson 01 §1, lesson 09 §1): with n
  characters, the first ⌊0.9 · n⌋ are for training and the rest for validation (1,003,854 /
  111,540 characters).
* The SMS Spam Collection (`SMS_SPAM_COLLECTION`, `load_sms_spam`) and the Sentiment Labelled
  Sentences (`SENTIMENT_AMAZON`, `SENTIMENT_IMDB`, `SENTIMENT_YELP`, `load_sentiment_sentences`):
  text classification, lesson 11 §1.
* bAbI task 1 (`BABI_QA1_TRAIN`, `BABI_QA1_TEST`, `load_babi`): question answering, lesson 12 §1.
* Tatoeba's Spanish–English sentence pairs (`SPA_ENG`, `load_spa_eng`): machine translation,
  lesson 13 §1, split by English sentence with all Spanish references of each.

The classification sets are cut into train / validation / test by `stratified_split`, a seeded
split that depends on nothing but the data (no random-number generator): within each class c, with
n_c examples, example i is ranked by

    h(i) = sha256(f"{seed}:{i}:{key_i}")

and split j takes the ranks ⌊n_c · F_{j−1} + ½⌋ … ⌊n_c · F_j + ½⌋ − 1, where
F_j = f_1 + … + f_j is the running sum of the fractions. The same data and seed give the same split
on every machine and every NumPy version.
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
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetChecksumError",
    "DatasetUnavailableError",
    "DatasetArchiveError",
    "DatasetFormatError",
    "TINY_SHAKESPEARE",
    "SMS_SPAM_COLLECTION",
    "SENTIMENT_AMAZON",
    "SENTIMENT_IMDB",
    "SENTIMENT_YELP",
    "BABI_QA1_TRAIN",
    "BABI_QA1_TEST",
    "DATA_DIR_ENV",
    "default_cache_dir",
    "cache_path",
    "fetch",
    "load_tiny_shakespeare",
    "train_val_split",
    "stratified_split",
    "TextSplit",
    "TextClassificationData",
    "load_sms_spam",
    "load_sentiment_sentences",
    "BabiQuestion",
    "BabiData",
    "load_babi",
    "SPA_ENG",
    "TranslationSplit",
    "TranslationData",
    "load_spa_eng",
]

#: Environment variable naming the folder that holds (or receives) the data files.
DATA_DIR_ENV = "LESSONS_DATA_DIR"

_CHUNK = 1 << 16
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A downloadable file, pinned by size and sha256 (what `fetch` downloads; lesson 01 §1
    uses one, lessons 11 §1 and 12 §1 use the others).

    Attributes:
        name: a human-readable name used in messages (``"Tiny Shakespeare"``).
        filename: the file's name in the cache folder (no directories).
        url: where to download it from (a zip archive if ``member`` is given).
        sha256: the expected SHA-256 of the file, 64 lowercase hex digits.
        size: the expected size in bytes.
        member: ``None`` for a plain file; else the path of the file inside the zip archive at
            ``url`` (``"sentiment labelled sentences/imdb_labelled.txt"``). ``sha256`` and ``size``
            are then the member's: the archive itself is not pinned.
    """

    name: str
    filename: str
    url: str
    sha256: str
    size: int
    member: str | None = None

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
        if self.member is not None and (
            not isinstance(self.member, str) or not self.member or self.member.endswith("/")
        ):
            raise ValueError(
                "Dataset.member must be None or the path of a file inside the zip archive, "
                f"got {self.member!r}"
            )


#: Tiny Shakespeare: ``data/tinyshakespeare/input.txt`` from the public GitHub repository
#: karpathy/char-rnn.
TINY_SHAKESPEARE = Dataset(
    name="Tiny Shakespeare",
    filename="tinyshakespeare.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    size=1_115_394,
)

#: The SMS Spam Collection v.1 (Almeida, Gómez Hidalgo & Yamakami, "Contributions to the Study of
#: SMS Spam Filtering: New Collection and Results", DocEng 2011; UCI Machine Learning Repository,
#: DOI 10.24432/C5CC84; CC BY 4.0): 5,574 messages, 747 of them spam, one ``label<TAB>text`` a
#: line. Downloaded from ``data/sms.tsv`` of the GitHub repository justmarkham/pycon-2016-tutorial
#: at a fixed commit, byte-identical to the member ``SMSSpamCollection`` of the UCI zip. Lesson 11
#: §1.
SMS_SPAM_COLLECTION = Dataset(
    name="SMS Spam Collection",
    filename="sms_spam_collection.tsv",
    url="https://raw.githubusercontent.com/justmarkham/pycon-2016-tutorial/5339710562cc46c4a32a369d63f1e8751a18a54e/data/sms.tsv",
    sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
    size=477_907,
)

_SENTIMENT_ZIP = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
_SENTIMENT_FOLDER = "sentiment labelled sentences/"

#: Sentiment Labelled Sentences (Kotzias, Denil, de Freitas & Smyth, "From Group to Individual
#: Labels using Deep Features", KDD 2015; UCI Machine Learning Repository; CC BY 4.0): 1,000 Amazon
#: product-review sentences, 500 positive, one ``sentence<TAB>label`` a line. A member of the UCI
#: zip. Lesson 11 §1.
SENTIMENT_AMAZON = Dataset(
    name="Sentiment Labelled Sentences (Amazon)",
    filename="amazon_cells_labelled.txt",
    url=_SENTIMENT_ZIP,
    sha256="47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    size=58_226,
    member=_SENTIMENT_FOLDER + "amazon_cells_labelled.txt",
)

#: Sentiment Labelled Sentences (Kotzias et al., KDD 2015; CC BY 4.0): 1,000 IMDb movie-review
#: sentences, 500 positive. A member of the UCI zip. Lesson 11 §1.
SENTIMENT_IMDB = Dataset(
    name="Sentiment Labelled Sentences (IMDb)",
    filename="imdb_labelled.txt",
    url=_SENTIMENT_ZIP,
    sha256="aef2e49e3da25714d61175e3a6e68eeef74a20a2f914318dc3be9947ea86512d",
    size=85_285,
    member=_SENTIMENT_FOLDER + "imdb_labelled.txt",
)

#: Sentiment Labelled Sentences (Kotzias et al., KDD 2015; CC BY 4.0): 1,000 Yelp restaurant-review
#: sentences, 500 positive. A member of the UCI zip. Lesson 11 §1.
SENTIMENT_YELP = Dataset(
    name="Sentiment Labelled Sentences (Yelp)",
    filename="yelp_labelled.txt",
    url=_SENTIMENT_ZIP,
    sha256="c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
    size=61_320,
    member=_SENTIMENT_FOLDER + "yelp_labelled.txt",
)

_BABI_BASE = (
    "https://raw.githubusercontent.com/NishthaChaudhary/Question_Anwering_Module_RNN_LSTM/"
    "079138d8499ebfcc8194f70724541dbae628b5bb/"
)

#: bAbI task 1, "single supporting fact", en-10k, training file (Weston, Bordes, Chopra, Rush, van
#: Merriënboer, Joulin & Mikolov, "Towards AI-Complete Question Answering: A Set of Prerequisite
#: Toy Tasks", 2015, arXiv:1502.05698; CC BY 3.0): 10,000 questions in 2,000 stories. Byte-exact
#: copy of ``tasks_1-20_v1-2/en-10k/qa1_single-supporting-fact_train.txt`` in the GitHub
#: repository NishthaChaudhary/Question_Anwering_Module_RNN_LSTM at a fixed commit. Lesson 12 §1.
BABI_QA1_TRAIN = Dataset(
    name="bAbI task 1 (en-10k, train)",
    filename="babi_qa1_train.txt",
    url=_BABI_BASE + "qa1_single-supporting-fact_train.txt",
    sha256="c55ab2224d096363fef2eec026b783f6b08508cc865f1f9b7ed4bae4f6f2b9a0",
    size=944_249,
)

#: bAbI task 1, en-10k, test file (Weston et al., 2015; CC BY 3.0): 1,000 questions in 200
#: stories. Lesson 12 §1.
BABI_QA1_TEST = Dataset(
    name="bAbI task 1 (en-10k, test)",
    filename="babi_qa1_test.txt",
    url=_BABI_BASE + "qa1_single-supporting-fact_test.txt",
    sha256="809e52cc3c57ac66bf5a7268636a24e15ad1552d9b9bdac0eaca1680da9722e9",
    size=94_478,
)

#: Tatoeba's Spanish–English sentence pairs (tatoeba.org via www.manythings.org/anki, file dated
#: 2018-05-13; CC BY 2.0 FR; the set the Keras and TensorFlow translation examples use): 118,964
#: pairs ``English<TAB>Spanish``, one a line, 102,904 distinct English sentences. The member
#: ``spa-eng/spa.txt`` of ``spa-eng.zip`` (2,767,131 bytes) in the GitHub repository
#: Hoangduc212001/hoang at a fixed commit. Attribution: www.manythings.org/anki and tatoeba.org;
#: the data contains some translation errors (Tatoeba's own warning). Lesson 13 §1.
SPA_ENG = Dataset(
    name="Tatoeba Spanish-English pairs",
    filename="spa-eng.txt",
    url=(
        "https://raw.githubusercontent.com/Hoangduc212001/hoang/"
        "2cfd26f9551f5c2d614e8000500891801840a438/spa-eng.zip"
    ),
    sha256="6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c",
    size=8_042_772,
    member="spa-eng/spa.txt",
)


class DatasetError(Exception):
    """Base class of the errors raised by `fetch` and the loaders (lesson 01 §1's
    `load_tiny_shakespeare`, lesson 11 §1's `load_sms_spam`, ...)."""


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


class DatasetArchiveError(DatasetError, ValueError):
    """A download that should be a zip archive is not one, lacks the member, or cannot be
    extracted; nothing was written to the cache."""


class DatasetFormatError(DatasetError, ValueError):
    """A verified file does not parse as its loader expects (wrong fields, labels or counts)."""


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


def _by_hand(dataset: Dataset) -> str:
    """What to download by hand: the file, or the archive and which member to extract."""
    if dataset.member is None:
        return f"download the file from {dataset.url}"
    return f"download the zip archive {dataset.url}, extract its member {dataset.member!r}"


def _unavailable(dataset: Dataset, path: Path, url: str, reason: object) -> DatasetUnavailableError:
    if dataset.member is None:
        what, source = "download the file on a machine with internet access", dataset.url
    else:
        what = (
            "download the zip archive on a machine with internet access, extract its member "
            f"{dataset.member!r}"
        )
        source = f"the member {dataset.member!r} of the zip archive {dataset.url}"
    message = (
        f"Could not download {dataset.name} from {url}: {reason}\n"
        f"To work offline, {what} and put it at\n"
        f"    {path}\n"
        f"or put it in any folder and set the environment variable {DATA_DIR_ENV} to that folder.\n"
        f"Expected file: {dataset.filename}, {dataset.size:,} bytes, sha256 {dataset.sha256}\n"
        f"(source: {source})"
    )
    return DatasetUnavailableError(message, path=path, url=url)


def _download(
    dataset: Dataset,
    url: str,
    out,
    path: Path,
    progress: bool,
    timeout: float,
    expected: int | None,
) -> tuple[str, int]:
    """Stream ``url`` into the open binary file ``out``; return (sha256, bytes written).

    Network failures become `DatasetUnavailableError`; reading stops early (and the size
    check in `fetch` refuses the file) if the server sends more than ``expected`` bytes
    (``None``: a zip archive, whose size is not pinned, is read to its end).
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
            total=expected,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dataset.filename if dataset.member is None else f"{dataset.filename} (zip)",
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
                expected is not None and size > expected
            ):  # not the file we want (an HTML error page, another file): stop early
                break
    return h.hexdigest(), size


def _download_member(
    dataset: Dataset, url: str, out, path: Path, progress: bool, timeout: float
) -> tuple[str, int]:
    """Download the zip archive at ``url`` to a temporary file beside ``path``, extract
    ``dataset.member`` into the open binary file ``out``; return the member's (sha256, bytes
    written). The archive is deleted whatever happens; extraction stops once the member proves
    larger than ``dataset.size``.
    """
    fd, archive_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{dataset.filename}.", suffix=".zip.part"
    )
    archive = Path(archive_name)
    refusal = f"Refusing the download of {dataset.name} from {url}"
    nothing = (
        f"Nothing was written to {path.parent}. Try again, or {_by_hand(dataset)} yourself "
        f"and put it at {path}."
    )
    try:
        with os.fdopen(fd, "wb") as zout:
            _download(dataset, url, zout, path, progress, timeout, expected=None)
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as e:
            raise DatasetArchiveError(
                f"{refusal}: expected a zip archive holding {dataset.member!r}, got "
                f"{archive.stat().st_size:,} bytes that are not a zip archive ({e}).\n{nothing}"
            ) from e
        with zf:
            try:
                info = zf.getinfo(dataset.member)
            except KeyError:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
                raise DatasetArchiveError(
                    f"{refusal}: the zip archive holds no member {dataset.member!r} "
                    f"(it holds {len(names)} files: {shown}).\n{nothing}"
                ) from None
            h = hashlib.sha256()
            size = 0
            try:
                with zf.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        size += len(chunk)
                        if size > dataset.size:  # not the member we want: stop early
                            break
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
                raise DatasetArchiveError(
                    f"{refusal}: its member {dataset.member!r} could not be extracted "
                    f"({type(e).__name__}: {e}).\n{nothing}"
                ) from e
    finally:
        archive.unlink(missing_ok=True)
    return h.hexdigest(), size


def fetch(
    dataset: Dataset,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Return the path of a verified local copy of ``dataset``, downloading it if needed.

    What `load_tiny_shakespeare` (lesson 01 §1) and the loaders of lessons 11 §1 and 12 §1 call;
    the module docstring describes the cache.

    Args:
        dataset: what to fetch (e.g. `TINY_SHAKESPEARE`).
        cache_dir: the folder to look in and download to; default `default_cache_dir`
            (``$LESSONS_DATA_DIR``, else the per-user cache folder). Created if missing.
        url: download from here instead of ``dataset.url`` (a mirror; for a ``member``, a mirror
            of the zip archive); the file is still checked against ``dataset.sha256``.
        progress: show a download progress bar (printed to stdout).
        timeout: socket timeout in seconds for the download.

    Returns:
        ``cache_dir / dataset.filename``, whose sha256 matches ``dataset.sha256``.

    Raises:
        DatasetChecksumError: the download's size or sha256 (for a ``member``: the member's) is
            wrong; nothing was written to the cache.
        DatasetArchiveError: (``member`` only) the download is not a zip archive, lacks the member
            or cannot be extracted; nothing was written to the cache.
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
            if dataset.member is None:
                got_sha, got_size = _download(
                    dataset, url, out, path, progress, timeout, expected=dataset.size
                )
            else:
                got_sha, got_size = _download_member(dataset, url, out, path, progress, timeout)
        if got_sha != dataset.sha256 or got_size != dataset.size:
            if got_size < dataset.size:
                what, got = "truncated", f"{got_size:,} bytes, sha256 {got_sha}"
            elif got_size > dataset.size:
                what, got = "too large", f"more than {dataset.size:,} bytes (stopped reading)"
            else:
                what, got = "corrupt", f"{got_size:,} bytes, sha256 {got_sha}"
            file = "the file" if dataset.member is None else f"its member {dataset.member!r}"
            raise DatasetChecksumError(
                f"Refusing the download of {dataset.name} from {url}: {file} is {what}.\n"
                f"    expected {dataset.size:,} bytes, sha256 {dataset.sha256}\n"
                f"    got      {got}\n"
                f"Nothing was written to {path.parent}. Try again, or {_by_hand(dataset)} "
                f"yourself and put it at {path}.",
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


# --- splits ---------------------------------------------------------------------------------------


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {type(seed).__name__} {seed!r}")
    return int(seed)


def _fractions(fractions: object) -> tuple[float, ...]:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence):
        raise TypeError(
            "fractions must be a sequence of numbers, e.g. (0.8, 0.1, 0.1), got "
            f"{type(fractions).__name__} {fractions!r}"
        )
    if len(fractions) < 2:
        raise ValueError(f"fractions must name at least 2 splits, got {tuple(fractions)!r}")
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, numbers.Real):
            raise TypeError(
                f"fractions must hold numbers, got {type(f).__name__} {f!r} in {tuple(fractions)!r}"
            )
        if not (math.isfinite(f) and 0 < f < 1):
            raise ValueError(
                f"each fraction must be strictly between 0 and 1, got {f!r} in {tuple(fractions)!r}"
            )
    total = math.fsum(fractions)
    if abs(total - 1) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)!r} (sum {total!r})")
    return tuple(float(f) for f in fractions)


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    fractions: Sequence[float],
    seed: int = 0,
    keys: Sequence[str] | None = None,
    group_equal_keys: bool = False,
) -> tuple[np.ndarray, ...]:
    """A seeded, stratified split that never changes: one index array per fraction.

    The splits of lessons 11 §1 and 12 §1. Within each class c (n_c examples), example i is ranked
    by h(i) = sha256(f"{seed}:{i}:{key_i}") (``key_i = keys[i]``, or ``""`` without ``keys``); split
    j takes the ranks ⌊n_c · F_{j−1} + ½⌋ … ⌊n_c · F_j + ½⌋ − 1 with F_j = f_1 + … + f_j. Every
    split therefore holds each class within one example of its share f_j · n_c, and no
    random-number generator is involved: the split is the same on every machine, every NumPy
    version and every call.

    Args:
        labels: one integer class (or stratum) per example, shape ``[n]``.
        fractions: the share of each split, each in (0, 1), summing to 1, e.g. ``(0.8, 0.1, 0.1)``.
        seed: a non-negative int; another seed gives another (equally fixed) split.
        keys: optional text per example (the example itself) mixed into its hash, so the ranking
            follows the data and not only the position.
        group_equal_keys: keep examples with equal keys in one split (a message repeated in the
            file must not be in train and test at once: that would leak test examples into
            training). The hash is then h(i) = sha256(f"{seed}:{key_i}"), so equal keys rank side
            by side, and a group goes whole to the split where its first member's rank falls;
            each class then holds its share within the size of its largest group.

    Returns:
        One sorted ``int64`` index array per fraction; together they are a partition of
        ``range(n)``.
    """
    fractions = _fractions(fractions)
    seed = _seed(seed)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class per example), got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError("labels is empty: there is nothing to split")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integer classes, got dtype {labels.dtype}")
    n = len(labels)
    if keys is None:
        keys = [""] * n
    elif isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise TypeError(f"keys must be a sequence of str or None, got {type(keys).__name__}")
    elif len(keys) != n:
        raise ValueError(f"keys must have one entry per label: {n} labels, {len(keys)} keys")
    else:
        bad = next((k for k in keys if not isinstance(k, str)), None)
        if bad is not None:
            raise TypeError(f"keys must be str, got {type(bad).__name__} {bad!r}"[:200])
    if group_equal_keys:
        digests = [hashlib.sha256(f"{seed}:{key}".encode()).digest() for key in keys]
    else:
        digests = [
            hashlib.sha256(f"{seed}:{i}:{key}".encode()).digest() for i, key in enumerate(keys)
        ]
    cumulative = [math.fsum(fractions[: j + 1]) for j in range(len(fractions) - 1)]
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(labels):
        ranked = sorted(np.flatnonzero(labels == c).tolist(), key=lambda i: (digests[i], i))
        n_c = len(ranked)
        cuts = [0] + [min(n_c, math.floor(n_c * f + 0.5)) for f in cumulative] + [n_c]
        if not group_equal_keys:
            for j, part in enumerate(parts):
                part.extend(ranked[cuts[j] : cuts[j + 1]])
            continue
        j = 0
        for rank, i in enumerate(ranked):
            if rank == 0 or digests[i] != digests[ranked[rank - 1]]:  # a new group starts here
                while rank >= cuts[j + 1]:
                    j += 1
            parts[j].append(i)
    return tuple(np.array(sorted(part), dtype=np.int64) for part in parts)


# --- text classification (lesson 11) --------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64)
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TextSplit:
    """One split (train, val or test) of a text-classification set (lesson 11 §1).

    Attributes:
        texts: the examples, in file order.
        labels: their classes, ``int64`` ``[n]`` (read-only), indices into ``class_names``.
        indices: each example's position in the loaded file(s), ``int64`` ``[n]`` (read-only).
        sources: each example's source (``"amazon"``, ``"imdb"``, ``"yelp"``) where a set has
            several, else ``None``.
    """

    texts: list[str]
    labels: np.ndarray
    indices: np.ndarray
    sources: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        sizes = {"labels": len(self.labels), "indices": len(self.indices)}
        if self.sources is not None:
            sizes["sources"] = len(self.sources)
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise ValueError(f"TextSplit needs one entry per text ({n} texts), got {wrong}")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        counts = dict(zip(*np.unique(self.labels, return_counts=True), strict=True))
        counts = {int(k): int(v) for k, v in counts.items()}
        return f"TextSplit({len(self):,} texts, label counts {counts})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TextClassificationData:
    """A labelled text set cut into train / val / test (what `load_sms_spam` and
    `load_sentiment_sentences` return; lesson 11 §1).

    Attributes:
        name: the data set's name.
        train, val, test: the three `TextSplit` s (disjoint; together the whole file).
        class_names: the name of each label, e.g. ``("ham", "spam")``: label k is
            ``class_names[k]``.
    """

    name: str
    train: TextSplit
    val: TextSplit
    test: TextSplit
    class_names: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"TextClassificationData({self.name!r}, class_names={self.class_names!r}, "
            f"train {len(self.train):,} / val {len(self.val):,} / test {len(self.test):,})"
        )


_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_SMS_COUNTS = (5_574, 747)  # messages, spam
_SENTIMENT_COUNTS = (1_000, 500)  # sentences per file, positive per file


def _three_fractions(fractions: object) -> tuple[float, float, float]:
    fractions = _fractions(fractions)
    if len(fractions) != 3:
        raise ValueError(
            f"fractions must have 3 entries (train, val, test), got {len(fractions)}: {fractions!r}"
        )
    return fractions  # type: ignore[return-value]


def _text_data(
    name: str,
    texts: list[str],
    labels: list[int],
    class_names: tuple[str, ...],
    strata: np.ndarray,
    fractions: tuple[float, ...],
    seed: int,
    sources: list[str] | None = None,
) -> TextClassificationData:
    parts = stratified_split(strata, fractions, seed=seed, keys=texts, group_equal_keys=True)
    labels_arr = np.asarray(labels, dtype=np.int64)
    splits = [
        TextSplit(
            texts=[texts[i] for i in idx],
            labels=_frozen(labels_arr[idx]),
            indices=_frozen(idx),
            sources=None if sources is None else [sources[i] for i in idx],
        )
        for idx in parts
    ]
    return TextClassificationData(name, *splits, class_names=class_names)


def _lines(path: Path) -> list[str]:
    """The file's lines, split at ``\\n`` only: ``str.splitlines`` would also split at U+0085
    (NEXT LINE), a stray character that two IMDb sentences hold."""
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _format_error(dataset: Dataset, path: Path, problem: str) -> DatasetFormatError:
    return DatasetFormatError(
        f"{dataset.name} ({path}) does not parse as expected: {problem}. "
        "The file's sha256 matched, so the loader and the pinned file disagree: please report this."
    )


def _parse_sms(path: Path, dataset: Dataset) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    classes = {"ham": 0, "spam": 1}
    for number, line in enumerate(_lines(path), start=1):
        label, tab, text = line.partition("\t")
        if not tab or label not in classes:
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected 'ham<TAB>text' or 'spam<TAB>text', got {line[:60]!r}",
            )
        texts.append(text)
        labels.append(classes[label])
    n, spam = len(texts), sum(labels)
    if (n, spam) != _SMS_COUNTS:
        raise _format_error(
            dataset,
            path,
            f"expected {_SMS_COUNTS[0]:,} messages ({_SMS_COUNTS[1]:,} spam), "
            f"got {n:,} messages ({spam:,} spam)",
        )
    return texts, labels


def load_sms_spam(
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    *,
    fractions: Sequence[float] = _SPLIT_FRACTIONS,
    seed: int = 0,
) -> TextClassificationData:
    """The SMS Spam Collection (Almeida, Gómez Hidalgo & Yamakami, DocEng 2011; CC BY 4.0): 5,574
    text messages, 747 spam, cut into train / val / test. Used in lesson 11 §1.

    Each line is ``label<TAB>text``, split at the first tab, no quoting; the text is kept as stored
    (a few messages hold stray U+0091–U+0096 characters, Windows-1252 quotes and dashes stored
    as such). Labels: 0 = ham, 1 = spam. The split is `stratified_split` of the labels with the
    messages as keys: with the defaults (80 / 10 / 10, seed 0) train 4,460 (598 spam), val 556
    (74 spam), test 558 (75 spam). The file holds repeated messages (5,171 distinct texts; "Sorry,
    I'll call later" 30 times): every copy of a message falls in the same split
    (``group_equal_keys``), so no test message is also a training message.

    Downloads and caches the file on first use (see `fetch`).

    Args:
        cache_dir: folder holding ``sms_spam_collection.tsv``; default ``$LESSONS_DATA_DIR`` or
            the per-user cache folder.
        url: a mirror to download from instead of GitHub (checked against the same sha256).
        progress: show a progress bar while downloading.
        fractions: the train, val and test shares.
        seed: the split's seed (`stratified_split`).

    Returns:
        A `TextClassificationData` with ``class_names == ("ham", "spam")``.
    """
    fractions = _three_fractions(fractions)
    seed = _seed(seed)
    dataset = SMS_SPAM_COLLECTION
    path = fetch(dataset, cache_dir=cache_dir, url=url, progress=progress)
    texts, labels = _parse_sms(path, dataset)
    return _text_data(
        dataset.name, texts, labels, ("ham", "spam"), np.asarray(labels), fractions, seed
    )


def _parse_sentiment(path: Path, dataset: Dataset) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for number, line in enumerate(_lines(path), start=1):
        sentence, tab, label = line.rpartition("\t")  # the label is the last field
        sentence = sentence.strip()
        label = label.strip()
        if not tab or label not in ("0", "1") or not sentence:
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected 'sentence<TAB>0' or 'sentence<TAB>1', got {line[:60]!r}",
            )
        texts.append(sentence)
        labels.append(int(label))
    n, positive = len(texts), sum(labels)
    if (n, positive) != _SENTIMENT_COUNTS:
        raise _format_error(
            dataset,
            path,
            f"expected {_SENTIMENT_COUNTS[0]:,} sentences ({_SENTIMENT_COUNTS[1]:,} positive), "
            f"got {n:,} sentences ({positive:,} positive)",
        )
    return texts, labels


def load_sentiment_sentences(
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    *,
    fractions: Sequence[float] = _SPLIT_FRACTIONS,
    seed: int = 0,
) -> TextClassificationData:
    """Sentiment Labelled Sentences (Kotzias, Denil, de Freitas & Smyth, "From Group to Individual
    Labels using Deep Features", KDD 2015; CC BY 4.0): 3,000 review sentences from Amazon, IMDb
    and Yelp (1,000 each, half of them positive), cut into train / val / test. Used in lesson 11
    §1 to show where a model trained from scratch stops.

    Each line is ``sentence<TAB>label``; the label is the last field and the sentence is
    everything before the last tab, with surrounding spaces removed (the IMDb lines end in two
    spaces; a few IMDb sentences hold stray U+0085 / U+0096 / U+0097 characters, Windows-1252
    dashes and ellipses stored as such, kept). Labels: 0 = negative, 1 = positive. The files are
    read in the order amazon, imdb, yelp (``indices`` count through all three) and each sentence's
    source is recorded in ``sources``. The split is `stratified_split` with source × label as the
    stratum and the sentences as keys: with the defaults (80 / 10 / 10, seed 0) train 2,400, val
    300, test 300, each split balanced in label and source (400 / 50 / 50 sentences of each
    source-and-label pair).

    The three files are members of one UCI zip archive; each is downloaded (from the archive) and
    cached on first use (see `fetch`), flat in the cache folder (``amazon_cells_labelled.txt``,
    ``imdb_labelled.txt``, ``yelp_labelled.txt``).

    Args:
        cache_dir: folder holding the three files; default ``$LESSONS_DATA_DIR`` or the per-user
            cache folder.
        url: a mirror of the zip archive (each member is checked against its sha256).
        progress: show a progress bar while downloading.
        fractions: the train, val and test shares.
        seed: the split's seed (`stratified_split`).

    Returns:
        A `TextClassificationData` with ``class_names == ("negative", "positive")`` and
        ``sources`` set on every split.
    """
    fractions = _three_fractions(fractions)
    seed = _seed(seed)
    files = {"amazon": SENTIMENT_AMAZON, "imdb": SENTIMENT_IMDB, "yelp": SENTIMENT_YELP}
    texts: list[str] = []
    labels: list[int] = []
    sources: list[str] = []
    strata: list[int] = []
    for s, (source, dataset) in enumerate(files.items()):
        path = fetch(dataset, cache_dir=cache_dir, url=url, progress=progress)
        t, y = _parse_sentiment(path, dataset)
        texts += t
        labels += y
        sources += [source] * len(t)
        strata += [2 * s + label for label in y]
    return _text_data(
        "Sentiment Labelled Sentences",
        texts,
        labels,
        ("negative", "positive"),
        np.asarray(strata),
        fractions,
        seed,
        sources,
    )


# --- question answering (lesson 12) ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BabiQuestion:
    """One bAbI question with the story told before it (lesson 12 §1).

    Attributes:
        story: the story's sentences before the question, in order, without their line numbers
            (earlier questions of the same story are not part of it).
        question: e.g. ``"Where is Mary?"``.
        answer: e.g. ``"bathroom"``; it occurs in a supporting sentence.
        supporting: indices into ``story`` of the sentences that support the answer.
        story_id: the story's position in its file (0-based); the questions of one story share it.
    """

    story: tuple[str, ...]
    question: str
    answer: str
    supporting: tuple[int, ...]
    story_id: int


@dataclasses.dataclass(frozen=True, repr=False)
class BabiData:
    """A bAbI task cut into train / val / test questions (what `load_babi` returns; lesson 12 §1).

    Attributes:
        task: the task number (1).
        train, val, test: lists of `BabiQuestion`; val is a split of the training stories (no
            story has questions in both train and val), test is the task's own test file.
    """

    task: int
    train: list[BabiQuestion]
    val: list[BabiQuestion]
    test: list[BabiQuestion]

    def __repr__(self) -> str:
        def stories(qs: list[BabiQuestion]) -> int:
            return len({q.story_id for q in qs})

        return (
            f"BabiData(task {self.task}: train {len(self.train):,} / val {len(self.val):,} / "
            f"test {len(self.test):,} questions, from {stories(self.train):,} / "
            f"{stories(self.val):,} / {stories(self.test):,} stories)"
        )


_BABI_COUNTS = {"train": (10_000, 2_000), "test": (1_000, 200)}  # questions, stories
_WORD = re.compile(r"[\w']+")


def _parse_babi(path: Path, dataset: Dataset) -> list[tuple[str, list[BabiQuestion]]]:
    """``[(story text, its questions), ...]`` in file order; the story text (its lines as stored)
    is what `load_babi` hashes to split the stories."""
    stories: list[tuple[list[str], list[BabiQuestion]]] = []
    sentences: list[str] = []
    index_of: dict[int, int] = {}  # line number -> index into sentences
    previous = 0
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        head, space, rest = line.partition(" ")
        if not space or not head.isdigit():
            raise _format_error(
                dataset, path, f"line {number}: expected '<number> <text>', got {line[:60]!r}"
            )
        n = int(head)
        if n == 1:
            stories.append(([], []))
            sentences, index_of = [], {}
        elif n != previous + 1 or not stories:
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected line number {previous + 1} or 1 (a new story), got {n}",
            )
        previous = n
        stories[-1][0].append(line)
        if "\t" not in rest:
            index_of[n] = len(sentences)
            sentences.append(rest.strip())
            continue
        fields = rest.split("\t")
        if len(fields) != 3:
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected 'question<TAB>answer<TAB>supporting line numbers', "
                f"got {len(fields)} fields: {line[:60]!r}",
            )
        question, answer, support = (f.strip() for f in fields)
        try:
            lines_cited = [int(s) for s in support.split()]
            supporting = tuple(index_of[s] for s in lines_cited)
        except (ValueError, KeyError):
            supporting = ()
        if not supporting:
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected the numbers of earlier story lines as supporting facts, "
                f"got {support!r}",
            )
        if not any(answer in _WORD.findall(sentences[i]) for i in supporting):
            raise _format_error(
                dataset,
                path,
                f"line {number}: the answer {answer!r} is in none of its supporting sentences "
                f"{[sentences[i] for i in supporting]}",
            )
        stories[-1][1].append(
            BabiQuestion(tuple(sentences), question, answer, supporting, len(stories) - 1)
        )
    return [("\n".join(lines), questions) for lines, questions in stories]


def _babi_file(
    dataset: Dataset, which: str, cache_dir, url: str | None, progress: bool
) -> list[tuple[str, list[BabiQuestion]]]:
    mirror = None if url is None else f"{url.rstrip('/')}/{dataset.url.rsplit('/', 1)[-1]}"
    path = fetch(dataset, cache_dir=cache_dir, url=mirror, progress=progress)
    stories = _parse_babi(path, dataset)
    got = (sum(len(q) for _, q in stories), len(stories))
    expected = _BABI_COUNTS[which]
    if got != expected:
        raise _format_error(
            dataset,
            path,
            f"expected {expected[0]:,} questions in {expected[1]:,} stories, "
            f"got {got[0]:,} questions in {got[1]:,} stories",
        )
    return stories


def load_babi(
    task: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> BabiData:
    """bAbI task 1, "single supporting fact", en-10k (Weston et al., "Towards AI-Complete Question
    Answering: A Set of Prerequisite Toy Tasks", 2015, arXiv:1502.05698; CC BY 3.0), as question
    records. Used in lesson 12 §1.

    A file is a sequence of stories; each line is numbered (from 1 in each new story) and is a
    story sentence or a question ``question<TAB>answer<TAB>supporting line numbers``. Each
    question becomes a `BabiQuestion` whose ``story`` is the story's sentences before it (without
    line numbers or earlier questions) and whose ``supporting`` indexes that tuple; every answer is
    checked to occur in a supporting sentence.

    The test split is the test file (1,000 questions, 200 stories). Validation is cut from the
    training file by story, not by question, so no story has questions in both: the 2,000
    training stories are split by `stratified_split` (one class; the story's lines as keys) into
    ``1 − val_fraction`` and ``val_fraction``. With the defaults (0.1, seed 0): train 9,000
    questions (1,800 stories), val 1,000 questions (200 stories).

    Only task 1 is pinned here: any other task is refused.

    Args:
        task: the bAbI task; only 1.
        cache_dir: folder holding ``babi_qa1_train.txt`` and ``babi_qa1_test.txt``; default
            ``$LESSONS_DATA_DIR`` or the per-user cache folder.
        url: a mirror folder holding the two files under their source names
            (``qa1_single-supporting-fact_train.txt``, ``qa1_single-supporting-fact_test.txt``);
            each is checked against its sha256.
        progress: show a progress bar while downloading.
        val_fraction: share of the training stories held out for validation, in (0, 1).
        seed: the split's seed (`stratified_split`).

    Returns:
        A `BabiData` with ``train``, ``val`` and ``test`` lists of `BabiQuestion`.
    """
    if isinstance(task, bool) or not isinstance(task, numbers.Integral) or task != 1:
        raise ValueError(
            "only bAbI task 1 (single supporting fact, en-10k) is pinned in lessons_lib.data, "
            f"got task={task!r}"
        )
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise TypeError(
            f"val_fraction must be a float in (0, 1), got {type(val_fraction).__name__} "
            f"{val_fraction!r}"
        )
    if not (math.isfinite(val_fraction) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")
    seed = _seed(seed)
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a str or None, got {type(url).__name__} {url!r}")
    train_stories = _babi_file(BABI_QA1_TRAIN, "train", cache_dir, url, progress)
    test_stories = _babi_file(BABI_QA1_TEST, "test", cache_dir, url, progress)
    train_ids, val_ids = stratified_split(
        np.zeros(len(train_stories), dtype=np.int64),
        (1 - val_fraction, val_fraction),
        seed=seed,
        keys=[text for text, _ in train_stories],
    )

    def questions(stories: list[tuple[str, list[BabiQuestion]]], ids) -> list[BabiQuestion]:
        return [q for i in ids for q in stories[i][1]]

    return BabiData(
        task=1,
        train=questions(train_stories, train_ids),
        val=questions(train_stories, val_ids),
        test=questions(test_stories, range(len(test_stories))),
    )


# --- machine translation (lesson 13) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TranslationSplit:
    """One split (train, val or test) of a translation set: one record per source sentence with
    all its references (what `load_spa_eng` returns; lesson 13 §1).

    Attributes:
        sources: the distinct English sentences of the split, in file order.
        references: for each source, all its Spanish translations in file order (1 to 24 of them),
            as a tuple: the references of multi-reference BLEU.
        indices: each source's position among the distinct English sentences of the whole file
            (first-occurrence order), ``int64`` ``[n]`` (read-only).
    """

    sources: list[str]
    references: list[tuple[str, ...]]
    indices: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.sources)
        if len(self.references) != n or len(self.indices) != n:
            raise ValueError(
                f"TranslationSplit needs one entry per source ({n} sources), got "
                f"{len(self.references)} references and {len(self.indices)} indices"
            )

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def n_pairs(self) -> int:
        """The number of (source, reference) pairs: ∑ over sources of its number of references."""
        return sum(len(r) for r in self.references)

    def pairs(self) -> tuple[list[str], list[str]]:
        """``(sources, targets)``, one entry per pair (a source repeated once per reference).

        What a model trains on: every translation of a training sentence is one training example.
        """
        sources = [s for s, refs in zip(self.sources, self.references) for _ in refs]
        targets = [t for refs in self.references for t in refs]
        return sources, targets

    def __repr__(self) -> str:
        return f"TranslationSplit({len(self):,} sentences, {self.n_pairs:,} pairs)"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TranslationData:
    """A parallel corpus cut into train / val / test by source sentence (what `load_spa_eng`
    returns; lesson 13 §1).

    Attributes:
        name: the data set's name.
        source_language, target_language: ``"en"`` and ``"es"``.
        train, val, test: the three `TranslationSplit` s; no English sentence is in two of them.
        max_source_words: the restriction applied (``None``: every sentence).
    """

    name: str
    source_language: str
    target_language: str
    train: TranslationSplit
    val: TranslationSplit
    test: TranslationSplit
    max_source_words: int | None = None

    def __repr__(self) -> str:
        words = "" if self.max_source_words is None else f" ≤ {self.max_source_words} words"
        return (
            f"TranslationData({self.name!r}, {self.source_language} → {self.target_language}"
            f"{words}: train {len(self.train):,} / val {len(self.val):,} / test "
            f"{len(self.test):,} sentences ({self.train.n_pairs:,} / {self.val.n_pairs:,} / "
            f"{self.test.n_pairs:,} pairs))"
        )


_SPA_ENG_COUNTS = (118_964, 102_904)  # pairs, distinct English sentences


def _parse_spa_eng(path: Path, dataset: Dataset) -> tuple[list[str], list[list[str]]]:
    """The distinct English sentences in first-occurrence order, and each one's Spanish sentences
    in file order."""
    references: dict[str, list[str]] = {}
    n = 0
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise _format_error(
                dataset,
                path,
                f"line {number}: expected 'English<TAB>Spanish' (two non-empty fields), got "
                f"{line[:60]!r}",
            )
        english, spanish = (f.strip() for f in fields)
        references.setdefault(english, []).append(spanish)
        n += 1
    if (n, len(references)) != _SPA_ENG_COUNTS:
        raise _format_error(
            dataset,
            path,
            f"expected {_SPA_ENG_COUNTS[0]:,} pairs ({_SPA_ENG_COUNTS[1]:,} distinct English "
            f"sentences), got {n:,} pairs ({len(references):,} distinct English sentences)",
        )
    return list(references), list(references.values())


def load_spa_eng(
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    progress: bool = True,
    *,
    max_source_words: int | None = None,
    fractions: Sequence[float] = _SPLIT_FRACTIONS,
    seed: int = 0,
) -> TranslationData:
    """Tatoeba's Spanish–English sentence pairs (tatoeba.org via www.manythings.org/anki, CC BY
    2.0 FR), English → Spanish, cut into train / val / test by English sentence. Used in lesson 13
    §1.

    Each line is ``English<TAB>Spanish`` (118,964 pairs). One English sentence may have several
    Spanish translations (102,904 distinct English sentences; "I could kill you." has 24): a split
    of the pairs would put some translations of a test sentence into training, so the split is of
    the distinct English sentences, each with all its translations, which are also the references
    for multi-reference BLEU. The direction is English → Spanish because that side groups the
    references (the Spanish side has 113,322 distinct sentences, far fewer with several English
    translations).

    The split is `stratified_split` with one class and the English sentences as keys
    (``group_equal_keys``: a sentence's rank is sha256(f"{seed}:{sentence}"), which depends on its
    text alone). With the defaults (80 / 10 / 10, seed 0): train 82,323 / val 10,291 / test 10,290
    sentences (95,248 / 11,826 / 11,890 pairs).

    ``max_source_words`` keeps only the sentences of at most that many English words (split at
    whitespace, ``len(english.split())``, punctuation attached: "Tom isn't here." has 3). The
    restriction is applied after the split, so each restricted split is a subset of the full one
    and a sentence never changes split. With ``max_source_words=5`` (the lesson's CPU budget):
    41,905 sentences, 50,973 pairs — train 33,492 / val 4,236 / test 4,177 sentences (40,786 /
    5,099 / 5,088 pairs).

    The file is the member ``spa-eng/spa.txt`` of a zip archive: on first use the archive is
    downloaded, the member extracted, checked against its sha256 and cached as ``spa-eng.txt``
    (see `fetch`).

    Args:
        cache_dir: folder holding ``spa-eng.txt``; default ``$LESSONS_DATA_DIR`` or the per-user
            cache folder.
        url: a mirror of the zip archive, e.g. TensorFlow's ``spa-eng.zip`` (the member's bytes
            are checked against the same sha256; on a mismatch nothing is cached and the error
            says where the pinned archive is).
        progress: show a progress bar while downloading.
        max_source_words: keep only English sentences of at most this many words; ``None``
            keeps all.
        fractions: the train, val and test shares (of the English sentences).
        seed: the split's seed (`stratified_split`).

    Returns:
        A `TranslationData` (``source_language="en"``, ``target_language="es"``).
    """
    fractions = _three_fractions(fractions)
    seed = _seed(seed)
    if max_source_words is not None and (
        isinstance(max_source_words, bool)
        or not isinstance(max_source_words, numbers.Integral)
        or max_source_words < 1
    ):
        raise ValueError(
            f"max_source_words must be a positive int or None, got {max_source_words!r}"
        )
    dataset = SPA_ENG
    path = fetch(dataset, cache_dir=cache_dir, url=url, progress=progress)
    sources, references = _parse_spa_eng(path, dataset)
    parts = stratified_split(
        np.zeros(len(sources), dtype=np.int64),
        fractions,
        seed=seed,
        keys=sources,
        group_equal_keys=True,
    )

    def split(idx: np.ndarray) -> TranslationSplit:
        if max_source_words is not None:
            idx = np.array(
                [i for i in idx.tolist() if len(sources[i].split()) <= max_source_words],
                dtype=np.int64,
            )
        return TranslationSplit(
            sources=[sources[i] for i in idx],
            references=[tuple(references[i]) for i in idx],
            indices=_frozen(idx),
        )

    train, val, test = (split(p) for p in parts)
    return TranslationData(
        name=dataset.name,
        source_language="en",
        target_language="es",
        train=train,
        val=val,
        test=test,
        max_source_words=None if max_source_words is None else int(max_source_words),
    )
