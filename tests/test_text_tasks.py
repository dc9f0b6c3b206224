"""Text tasks: CSV sources, the tokenisation cache, length-sorted dynamic padding, bad input.

All on a tiny random BERT (``arch=bert``, the dependency-free ``bytes`` tokenizer, vocab 259)
and small synthetic CSVs written here.
"""

from __future__ import annotations

import csv
import random
import shlex

import pytest
import torch

pytest.importorskip("transformers")

from transferlab.cli import main  # noqa: E402
from transferlab.data import batches, make_task  # noqa: E402
from transferlab.data import text as text_mod  # noqa: E402
from transferlab.data.batching import length_order  # noqa: E402
from transferlab.inputs import TokenInputs  # noqa: E402
from transferlab.models import build_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

WORDS = {"cards": ["card", "arrive", "lost", "stolen", "delivery"],
         "money": ["rate", "exchange", "currency", "fee", "euro"],
         "cash": ["top", "up", "cash", "atm", "withdraw"]}


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def toy_rows(n=90, seed=0):
    rng = random.Random(seed)
    names = list(WORDS)
    return [(" ".join(rng.choices(WORDS[names[i % 3]], k=rng.randint(1, 12))), names[i % 3])
            for i in range(n)]


@pytest.fixture()
def toy(tmp_path, isolated_data):
    return write_csv(tmp_path / "toy.csv", toy_rows())


def test_bytes_tokenizer_known_answer():
    assert text_mod.tokenize(["ab", "é"], "bytes", 8) == [[1, 100, 101, 2], [1, 198, 172, 2]]
    assert text_mod.tokenize(["abcdef"], "bytes", 4) == [[1, 100, 101, 2]]  # truncated


def test_csv_task_labels_lengths_and_carved_test(toy):
    task = make_task(f"csv:path={toy}:tokenizer=bytes:max_length=16")
    rows = toy_rows()
    assert task.modality == "tokens" and task.classes == ("cards", "cash", "money")
    n = len(task.y_train) + len(task.y_val) + len(task.y_test)
    assert n == len(rows) and len(task.y_test) == 18  # 20% of each class of 30
    lengths = task.x_train.attention_mask.sum(1)
    assert int(lengths.max()) <= 16 and task.x_train.input_ids.shape[1] == int(lengths.max())
    # every row is CLS ... SEP then padding
    ids = task.x_train.input_ids
    assert bool((ids[:, 0] == 1).all())
    assert bool((ids.gather(1, (lengths - 1)[:, None]) == 2).all())


def test_tokens_cached_once_keyed_by_content_and_max_length(toy, monkeypatch):
    make_task(f"csv:path={toy}:tokenizer=bytes:max_length=16")
    from transferlab.data import clear_memory_cache

    clear_memory_cache()
    calls = []
    real = text_mod.tokenize
    monkeypatch.setattr(text_mod, "tokenize", lambda *a: calls.append(a) or real(*a))
    make_task(f"csv:path={toy}:tokenizer=bytes:max_length=16")
    assert calls == []  # read from the cache, not tokenised again
    make_task(f"csv:path={toy}:tokenizer=bytes:max_length=12")
    assert len(calls) == 1  # another max_length: another entry
    write_csv(toy, toy_rows(seed=1))  # new content, same path
    t = make_task(f"csv:path={toy}:tokenizer=bytes:max_length=16")
    assert len(calls) == 2
    first = text_mod.tokenize([toy_rows(seed=1)[0][0]], "bytes", 16)[0]
    assert first in [row[:len(first)] for row in t.x_train.input_ids.tolist()
                     + t.x_val.input_ids.tolist() + t.x_test.input_ids.tolist()]


def test_shuffled_token_batches_cover_once_and_are_length_sorted():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (1000,), generator=g)
    mask = (torch.arange(40)[None] < lengths[:, None]).long()
    x = TokenInputs(torch.arange(1000)[:, None].repeat(1, 40) * mask, mask)
    y = torch.arange(1000)
    seen, padded = [], 0
    for xb, yb in batches(x, y, 32, shuffle=True, generator=torch.Generator().manual_seed(1)):
        assert torch.equal(xb.input_ids[:, 0], yb)  # rows and labels stay together
        seen += yb.tolist()
        padded += int((xb.attention_mask == 0).sum())
    assert sorted(seen) == list(range(1000))
    # unsorted random batches of 32 would pad about a third of the positions; sorted pools
    # leave a few percent
    assert padded < 0.05 * int(mask.sum())
    assert torch.equal(lengths[length_order(x)], lengths.sort().values)


def test_features_do_not_depend_on_padding_or_batching():
    from transferlab.features import prefix_features

    model = build_model("bert", 3, vocab_size=259, hidden_size=16, num_layers=2,
                        max_length=48).eval()
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 20, (24,), generator=g)
    mask = (torch.arange(20)[None] < lengths[:, None]).long()
    x = TokenInputs(torch.randint(3, 259, (24, 20), generator=g) * mask, mask)
    wide = TokenInputs(torch.cat([x.input_ids, torch.zeros(24, 9, dtype=torch.long)], 1),
                       torch.cat([x.attention_mask, torch.zeros(24, 9, dtype=torch.long)], 1))
    a = prefix_features(model, x, 3, batch_size=5)
    b = prefix_features(model, wide, 3, batch_size=24)
    with torch.no_grad():
        one = [model.features(x[i:i + 1].__class__(x.input_ids[i:i + 1, :int(n)],
                                                    x.attention_mask[i:i + 1, :int(n)]), 3)
               for i, n in enumerate(lengths)]
    for i, n in enumerate(lengths):
        assert torch.allclose(a.hidden[i, :n], one[i].hidden[0], atol=1e-5)
        assert torch.allclose(b.hidden[i, :n], one[i].hidden[0], atol=1e-5)


@pytest.fixture()
def bad_files(tmp_path, isolated_data):
    f = tmp_path
    write_csv(f / "nocol.csv", [("hi", "a")], header=("sentence", "label"))
    write_csv(f / "empty.csv", [("hello", "a"), ("  ", "b"), ("x", "b")])
    write_csv(f / "one.csv", [("hello", "a"), ("there", "a"), ("you", "a")])
    write_csv(f / "ok.csv", toy_rows(30))
    from transferlab.checkpoint import save_checkpoint

    model = build_model("bert", 3, vocab_size=259, hidden_size=8, num_layers=1,
                        intermediate_size=16)
    save_checkpoint(f / "src", model, {"task": "random", "classes": ["a", "b", "c"]})
    return f


@pytest.mark.parametrize("task, fragment", [
    ("csv:path={f}/nocol.csv:tokenizer=bytes", "a 'text' column (it has 'sentence', 'label')"),
    ("csv:path={f}/empty.csv:tokenizer=bytes", "text='' is invalid: allowed is a non-empty text"
                                               " in every row; fill or remove row 3"),
    ("csv:path={f}/one.csv:tokenizer=bytes", "label=\"one class ('a')\" is invalid: allowed "
                                             "is at least 2 classes"),
    ("csv:path={f}/ok.csv:tokenizer=bytes:max_length=0", "max_length=0 is invalid: allowed is "
                                                         "an integer in 1..512"),
    ("csv:path={f}/missing.csv:tokenizer=bytes", "path='"),
    ("csv:tokenizer=bytes", "path='' is invalid"),
    ("csv:path={f}/ok.csv:tokenizer=gpt", "tokenizer='gpt' is invalid: allowed is minilm or "
                                          "bytes"),
])
def test_bad_text_input_exits_2_with_one_line(bad_files, capsys, task, fragment):
    f = bad_files
    rc = main(shlex.split(f"transfer --source {f}/src --task {task.format(f=f)} "
                          "--protocol linear-probe --quiet"))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and fragment in err, err
