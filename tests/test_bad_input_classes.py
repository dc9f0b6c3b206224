"""Bad input by class (issue 27, item 1): every case is a CLI call that must end in exit 2
and ONE line on stderr naming the parameter, its value, what is allowed and a fix; no
traceback; nothing created in the output location; no input changed.

Each row is (id, argv, fragments): every fragment must appear in the line (the parameter
and value, the rule, the fix). ``{o}`` is a fresh, empty output folder per case, ``{f}`` a
folder of prepared inputs shared by the module (never changed by a case), ``{S}`` a tiny
mlp source on digits at 8 px, ``{T8}`` its target task.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from transferlab.cli import main

FAST = "--epochs 1 --batch-size 64 --device cpu --quiet"
T8 = "digits:classes=5-9:size=8"
CSV = "csv:path={f}/t.csv:tokenizer=bytes"


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with (almost) no pixel data: what
    a decompression bomb looks like to a reader that trusts the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import numpy as np
    import torch

    from transferlab.checkpoint import save_checkpoint
    from transferlab.models import build_model

    f = tmp_path_factory.mktemp("inputs")
    S = f / "src"
    assert main(shlex.split(f"pretrain --task digits:classes=0-4:size=8 --arch mlp "
                            f"--arch-kwargs '{{\"width\": 8}}' {FAST} --out {S}")) == 0
    assert main(shlex.split(f"sweep --source {S}.safetensors --target {T8} --protocols freeze "
                            f"--depths 1 --seeds 1 --epochs 1 --workers 1 --quiet "
                            f"--db {f}/db.sqlite")) == 0
    assert main(shlex.split(f"ensemble --pretrain digits:classes=0-4:size=8 --arch mlp "
                            f"--members 2 --pretrain-epochs 1 --task {T8} --strategies "
                            f"independent,shift {FAST} --workers 1 --out {f}/ens")) == 0
    # checkpoints: copies under telling names, links, a text encoder, broken weights
    for name in ("src2", "similarity", "weights", "adv/advice"):
        (f / name).parent.mkdir(exist_ok=True)
        for ext in (".safetensors", ".json"):
            shutil.copy(f"{S}{ext}", f"{f / name}{ext}")
    for ext in (".safetensors", ".json"):
        os.symlink(f"{S}{ext}", f"{f}/srclink{ext}")
    os.symlink(f / "db.sqlite", f / "dblink")
    meta = {"task": "random", "classes": ["a", "b", "c"]}
    for name, vocab in (("txt", 259), ("txt60", 60)):
        model = build_model("bert", 3, vocab_size=vocab, hidden_size=8, num_layers=1,
                            intermediate_size=16)
        save_checkpoint(f / name, model, meta)
    shutil.copy(f / "txt.safetensors", f / "txtb.safetensors")
    shutil.copy(f / "txt.json", f / "txtb.json")
    nan = build_model("mlp", 5, in_channels=1, image_size=8, width=8)
    zero = build_model("mlp", 5, in_channels=1, image_size=8, width=8)
    with torch.no_grad():
        next(nan.parameters()).fill_(float("nan"))
        for p in zero.parameters():
            p.zero_()
    save_checkpoint(f / "nanw", nan, {"task": "digits:classes=0-4:size=8",
                                      "classes": list("01234")})
    save_checkpoint(f / "zero", zero, {"task": "digits:classes=0-4:size=8",
                                       "classes": list("01234")})
    # data: a text CSV, an empty .npz, a folder of decompression bombs
    rows = ["text,label"] + [f"{w} {i},{w}" for i in range(30) for w in ("apple", "pear", "plum")]
    (f / "t.csv").write_text("\n".join(rows) + "\n")
    np.savez(f / "zero.npz", x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, int))
    for c in ("a", "b"):
        (f / "bomb" / "train" / c).mkdir(parents=True)
        for i in range(2):
            (f / "bomb" / "train" / c / f"{i}.png").write_bytes(_bomb_png(30000, 30000))
    # stores and manifests: empty, truncated, a manifest that is a list, a cache that is a file
    (f / "empty.sqlite").write_bytes(b"")
    db = (f / "db.sqlite").read_bytes()
    (f / "trunc.sqlite").write_bytes(db[:len(db) // 2])
    (f / "listman").mkdir()
    (f / "listman" / "manifest.json").write_text(json.dumps([1, 2]))
    (f / "badman").mkdir()
    (f / "badman" / "manifest.json").write_text(json.dumps(
        {"format": "transferlab-ensemble/1", "task": T8, "strategies": {"x": {"members": 3}}}))
    (f / "cached.sqlite.cache").write_text("not a folder")
    (f / "afile").write_text("x")
    from PIL import Image
    for c in ("a", "b"):
        (f / "imgs" / "train" / c).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), 40 * i + (c == "b") * 20).save(f / "imgs" / "train" / c /
                                                                 f"{i}.png")
    (f / "spec.yaml").write_text(f"name: s\ntarget: '{T8}'\nsources: {{}}\n")
    lrs = ", ".join(f"0.{i + 1:04d}" for i in range(400))  # 400 lr x 3 protocols x 1000 seeds
    (f / "grid.yaml").write_text(f"name: grid\ntarget: '{T8}'\nsources:\n  s:\n"
                                 f"    checkpoint: {S}.safetensors\naxes:\n"
                                 f"  protocol: [finetune, linear-probe, head-only]\n"
                                 f"  seed: 1000\n  lr: [{lrs}]\n")
    return f


S = "{f}/src"
EXPAND = "--shots 1 --episodes 1 --workers 1 --no-weights --protocols linear-probe"
CASES = [
    # -- An output that is an input (data loss): refused before any work
    ("results-csv-is-the-db", "results {f}/db.sqlite --csv {f}/db.sqlite",
     ("--csv=", "db.sqlite", "would overwrite", "which db reads", "pick another --csv")),
    ("results-csv-links-to-the-db", "results {f}/db.sqlite --csv {f}/dblink",
     ("--csv=", "dblink", "would overwrite", "db.sqlite")),
    ("results-csv-is-the-db-wal", "results {f}/db.sqlite --csv {f}/db.sqlite-wal",
     ("--csv=", "would overwrite", "db.sqlite-wal")),
    ("ensemble-out-holds-its-members", f"ensemble --members {{f}}/ens/shift/member0 "
     f"{{f}}/ens/shift/member1 --task {T8} --strategies shift {FAST} --workers 1 "
     "--out {f}/ens", ("--out=", "member0", "which --members reads", "pick another --out")),
    ("ensemble-db-is-a-member", f"ensemble --members {S} {{f}}/src2 --task {T8} "
     f"--strategies independent {FAST} --db {S}.json", ("--db=", "src.json", "--members")),
    ("predict-save-probs-is-the-manifest", "ensemble predict --ensemble {f}/ens "
     "--save-probs {f}/ens/manifest.json", ("--save-probs=", "manifest.json", "--ensemble")),
    ("predict-save-probs-is-a-member", "ensemble predict --ensemble {f}/ens "
     "--save-probs {f}/ens/shift/member0.safetensors", ("--save-probs=", "member0")),
    ("sweep-db-is-the-source-sidecar", f"sweep --source {S}.safetensors --target {T8} "
     f"--depths 1 --db {S}.json", ("--db=", "src.json", "--source reads")),
    ("sweep-db-is-the-spec", "sweep {f}/spec.yaml --db {f}/spec.yaml",
     ("--db=", "spec.yaml", "SPEC reads")),
    ("similarity-out-over-a-sidecar", f"similarity --a {{f}}/similarity --b {S} --task {T8} "
     "--out {f} --quiet", ("--out=", "similarity.json", "--a reads")),
    ("weights-out-over-a-sidecar", f"weights --before {{f}}/weights --after {S} --out {{f}}",
     ("--out=", "weights.json", "--before reads")),
    ("transfer-out-is-the-source-by-a-link", f"transfer --source {{f}}/srclink --task {T8} "
     f"{FAST} --out {S}", ("--out=", "overwrite the source", "pick another --out")),
    ("advise-out-over-the-source", f"advise --source {{f}}/adv/advice --task {T8}:per_class=20 "
     "--quiet --out {f}/adv", ("--out=", "advice.json", "--source reads")),
    # -- Unbounded counts: the plan's size against the memory and time bound, before planning
    ("fewshot-episodes-1e8", "study fewshot --episodes 100000000 --out {o}/s",
     ("--episodes=100000000", "trials", "at most", "pass a smaller --episodes")),
    ("fewshot-product", "study fewshot --episodes 2000 --seeds 2000 --out {o}/s",
     ("=2000 is invalid", "4,000,000 trials", "--episodes 2,000 x --seeds 2,000")),
    ("text-episodes-1e8", "study text --episodes 100000000 --out {o}/s", ("--episodes=",)),
    ("ensembles-members-1e8", "study ensembles --members 100000000 --out {o}/s",
     ("--members=100000000", "at most")),
    ("defrost-seeds-1e8", "study defrost --synthetic --seeds 100000000 --out {o}/s",
     ("--seeds=100000000", "at most")),
    ("guide-seeds-1e8", "study guide --seeds 100000000 --out {o}/s", ("--seeds=100000000",)),
    ("yosinski-seeds-1e8", "study yosinski --seeds 100000000 --out {o}/s",
     ("--seeds=100000000",)),
    ("sweep-seeds-1e8", f"sweep --source {S}.safetensors --target {T8} --depths 1 "
     "--seeds 100000000 --db {o}/d.sqlite", ("axes.seed", "100,000,000 seeds", "at most")),
    ("sweep-spec-grid-product", "sweep {f}/grid.yaml --db {o}/d.sqlite",
     ("sweep 'grid' is invalid", "1,200,000 trials", "protocol: 3", "seed: 1000", "lr: 400",
      "shrink the axes")),
    ("ensemble-pretrain-members-1e8", f"ensemble --pretrain digits:classes=0-4:size=8 "
     f"--members 100000000 --task {T8} --out {{o}}/e", ("--members=100000000", "at most")),
    ("depth-seeds-1e8", f"depth --source {S} --task {T8}:per_class=20 --seeds 100000000",
     ("--seeds=100000000", "at most")),
    ("advise-seeds-1e8", f"advise --source {S} --task {T8}:per_class=20 --verify "
     "--seeds 100000000 --out {o}/a", ("--seeds=100000000", "at most")),
    # -- Modality and class mismatches: one line naming both sides, in every command
    ("transfer-text-source-image-task", f"transfer --source {{f}}/txt --task {T8} {FAST} "
     "--out {o}/m", ("source is a text model (bert, vocabulary 259)", "images of shape",
                     "pass a text task")),
    ("transfer-image-source-text-task", f"transfer --source {S} --task {CSV} {FAST} "
     "--out {o}/m", ("source is an image model (mlp, C=1, size 8)", "token sequences")),
    ("transfer-other-tokenizer", f"transfer --source {{f}}/txt60 --task {CSV} {FAST} "
     "--out {o}/m", ("vocabulary 60", "tokenizer='bytes' (vocabulary 259)", "tokenizer")),
    ("rank-text-source-image-task", f"rank --source {{f}}/txt --depths all --task {T8}",
     ("is a text model", f"task '{T8}' holds images")),
    ("rank-duplicate-by-a-link", f"rank --sources {S} {{f}}/srclink --task {T8}",
     ("--sources=", "distinct checkpoints", "drop the duplicate")),
    ("depth-text-source-image-task", f"depth --source {{f}}/txt --task {T8}:per_class=20 "
     "--quiet", ("source is a text model", "images of shape")),
    ("advise-image-source-text-task", f"advise --source {S} --task {CSV}:per_class=8 --quiet",
     ("source is an image model", "token sequences")),
    ("similarity-text-and-image", f"similarity --a {S} --b {{f}}/txt --task {T8} "
     "--out {o}/s --quiet", ("model_b is a text model", "images of shape")),
    ("ensemble-text-and-image-members", f"ensemble --members {S} {{f}}/txt --task {T8} "
     f"--strategies independent {FAST} --out {{o}}/e",
     ("member 1", "has another architecture than member 0", "a text model (bert",
      "vs an image model (mlp")),
    ("ensemble-text-members-image-task", f"ensemble --members {{f}}/txt {{f}}/txtb --task {T8} "
     f"--strategies independent {FAST} --out {{o}}/e", ("member 0 is a text model",
                                                         "images of shape")),
    ("ensemble-duplicate-members", f"ensemble --members {S} {{f}}/srclink --task {T8} "
     f"--strategies independent {FAST} --out {{o}}/e", ("member 1", "is member 0",
                                                         "distinct checkpoints")),
    ("predict-other-class-set", "ensemble predict --ensemble {f}/ens --task "
     "digits:classes=0-4:size=8", ("--task=", "['0', '1', '2', '3', '4']",
                                   "['5', '6', '7', '8', '9']", "pass a task with those")),
    ("predict-other-image-size", "ensemble predict --ensemble {f}/ens --task "
     "digits:classes=5-9:size=16", ("ensemble member", "size=16", "add size=8")),
    ("add-a-member-again", "ensemble add --ensemble {f}/ens --source {f}/ens/shift/member1 "
     "--no-compare --quiet", ("--source=", "already the ensemble's member", "member1", "pass another --source")),
    ("fewshot-text-source", f"study fewshot --source {{f}}/txt --target digits --size 8 "
     f"{EXPAND} --out {{o}}/s", ("--source is a text model", "images of shape")),
    ("text-study-image-source", f"study text --source {S} --task {CSV} --shots 1 "
     "--episodes 1 --no-full --workers 1 --out {o}/s", ("--source is an image model",
                                                        "token sequences")),
    ("text-study-other-tokenizer", f"study text --source {{f}}/txt60 --task {CSV} --shots 1 "
     "--episodes 1 --no-full --workers 1 --out {o}/s", ("vocabulary 60", "tokenizer='bytes'")),
    # -- Nonsense answered as a result: a decision among candidates at chance, too few samples
    ("depth-every-candidate-at-chance", f"depth --source {{f}}/zero --task {T8}:per_class=20 "
     "--epochs 1 --quiet", ("every candidate diverged or sits at chance",
                            # which depths the walk reaches depends on measured costs
                            "best validation accuracy of probe or walk: depth ",
                            "chance is 0.200", "train longer")),
    ("advise-every-candidate-at-chance", f"advise --source {{f}}/zero "
     f"--task {T8}:per_class=20 --quiet", ("advise: every candidate", "depth 1 0.200",
                                           "pick another --source")),
    ("rank-verify-at-chance", f"rank --source {{f}}/zero --task {T8} --verify --epochs 1 "
     "--quiet", ("rank --verify: every candidate", "zero", "train longer")),
    ("similarity-2-samples", f"similarity --a {S} --b {S} --task {T8} --n-samples 2 "
     "--out {o}/s --quiet", ("--n-samples=2", ">= 10", "CKA is 1 for any two models")),
    ("similarity-cca-fewer-samples-than-directions", f"similarity --a {S} --b {S} "
     f"--task {T8} --n-samples 12 --metric pwcca --out {{o}}/s --quiet",
     ("--n-samples=12", "pwcca", "n_samples=12 and ranks", "pass a larger --n-samples")),
    ("similarity-split-too-small", f"similarity --a {S} --b {S} --task {T8}:per_class=1 "
     "--split train --out {o}/s --quiet", ("--split='train'", "at least 10 inputs", "has 5")),
    # -- Output paths: folder for file and the reverse, inside a file, cache that is a file
    ("results-csv-is-a-folder", "results {f}/db.sqlite --csv {o}",
     ("--csv=", "names a folder", "pick a file name")),
    ("results-csv-inside-a-file", "results {f}/db.sqlite --csv {f}/afile/t.csv",
     ("--csv=", "afile is a file, not a folder")),
    ("sweep-db-cache-is-a-file", f"sweep --source {S}.safetensors --target {T8} --depths 1 "
     "--db {f}/cached.sqlite", ("--db=", "cached.sqlite.cache", "is a file", "move")),
    ("sweep-db-inside-a-file", f"sweep --source {S}.safetensors --target {T8} --depths 1 "
     "--db {f}/afile/d.sqlite", ("--db=", "is a file, not a folder")),
    ("predict-save-probs-is-a-folder", "ensemble predict --ensemble {f}/ens --save-probs {o}",
     ("--save-probs=", "names a folder")),
    ("predict-save-probs-inside-a-file", "ensemble predict --ensemble {f}/ens "
     "--save-probs {f}/afile/p.npz", ("--save-probs=", "is a file, not a folder")),
    ("ensemble-out-is-a-file", f"ensemble --members {S} {{f}}/src2 --task {T8} "
     f"--strategies independent {FAST} --out {{f}}/afile", ("--out=", "existing file")),
    ("ensemble-db-is-a-folder", f"ensemble --members {S} {{f}}/src2 --task {T8} "
     f"--strategies independent {FAST} --db {{o}}", ("--db=", "names a folder")),
    ("advise-out-is-a-file", f"advise --source {S} --task {T8}:per_class=20 --out {{f}}/afile",
     ("--out=", "existing file")),
    ("fewshot-out-inside-a-file", "study fewshot --out {f}/afile/s",
     ("--out=", "is a file, not a folder")),
    ("text-out-is-a-file", "study text --out {f}/afile", ("--out=", "existing file")),
    ("ensembles-out-is-a-file", "study ensembles --out {f}/afile", ("--out=", "existing file")),
    ("defrost-out-inside-a-file", "study defrost --synthetic --out {f}/afile/s",
     ("--out=", "is a file, not a folder")),
    ("guide-out-is-a-file", "study guide --out {f}/afile", ("--out=", "existing file")),
    # -- Corrupt or odd inputs
    ("results-empty-sqlite", "results {f}/empty.sqlite",
     ("db=", "empty.sqlite", "not a readable sweep store", "rerun the sweep")),
    ("results-truncated-sqlite", "results {f}/trunc.sqlite",
     ("db=", "trunc.sqlite", "malformed", "rerun the sweep")),
    ("results-by-twice", "results {f}/db.sqlite --by protocol,protocol",
     ("--by='protocol,protocol'", "twice", "distinct columns", "--by protocol")),
    ("sweep-cache-limit-nan", f"sweep --source {S}.safetensors --target {T8} --depths 1 "
     "--cache-limit-gb nan --db {o}/d.sqlite", ("--cache-limit-gb=nan", "finite")),
    ("sweep-cache-limit-inf", f"sweep --source {S}.safetensors --target {T8} --depths 1 "
     "--cache-limit-gb inf --db {o}/d.sqlite", ("--cache-limit-gb=inf", "finite")),
    ("strategy-alpha-inf", f"ensemble --members {S} {{f}}/src2 --task {T8} "
     f"--strategies shift:alpha=inf {FAST} --out {{o}}/e", ("alpha=inf", "finite")),
    ("ensemble-pretrain-lr-nan", f"ensemble --pretrain digits:classes=0-4:size=8 --members 2 "
     f"--pretrain-lr nan --task {T8} {FAST} --out {{o}}/e", ("--pretrain-lr=nan", "finite")),
    ("ensemble-workers-0", f"ensemble --members {S} {{f}}/src2 --task {T8} --workers 0 "
     f"{FAST} --out {{o}}/e", ("--workers=0", ">= 1", "leave it out")),
    ("npz-with-0-rows", "pretrain --task {f}/zero.npz --epochs 1 --quiet --out {o}/m",
     ("shape (0, 8, 8)", "at least one example", "0 rows")),
    ("decompression-bomb", "pretrain --task {f}/bomb --epochs 1 --quiet --out {o}/m",
     ("0.png' is invalid", "900,000,000 pixels", "at most", "resize it")),
    ("manifest-is-a-list", "ensemble predict --ensemble {f}/listman",
     ("manifest.json holds a JSON list", "JSON object", "rerun")),
    ("manifest-members-not-a-list", "ensemble predict --ensemble {f}/badman",
     ("'strategies' or 'task' is invalid", "a list of member paths", "rerun")),
    ("checkpoint-nan-weights", f"transfer --source {{f}}/nanw --task {T8} {FAST} --out {{o}}/m",
     ("checkpoint=", "nanw", "non-finite", "re-create the checkpoint")),
    ("similarity-nan-weights", f"similarity --a {{f}}/nanw --b {S} --task {T8} --out {{o}}/s "
     "--quiet", ("nanw", "non-finite")),
]


def _snapshot(root: Path) -> dict:
    # SQLite's -wal/-shm beside a store are its readers' own bookkeeping, not the data
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def test_ids_are_unique_and_every_class_is_covered():
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids) and len(ids) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_class(case, inputs, tmp_path, capsys):
    name, argv, fragments = case
    out = tmp_path / "out"
    out.mkdir()
    before = _snapshot(inputs)
    try:
        rc = main(shlex.split(argv.format(o=out, f=inputs)))
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert _snapshot(out) == {}, f"{name} left {sorted(_snapshot(out))}"
    assert _snapshot(inputs) == before, f"{name} changed its inputs"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only files and folders")
@pytest.mark.parametrize("argv, fragment", [
    ("results {f}/db.sqlite --csv {ro}/t.csv", "is not writable"),
    ("results {f}/db.sqlite --csv {ro}/old.csv", "read-only"),
    ("study fewshot --out {ro}", "is not writable"),
    ("ensemble predict --ensemble {f}/ens --save-probs {ro}/p.npz", "is not writable"),
])
def test_read_only_targets(inputs, tmp_path, capsys, argv, fragment):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "old.csv").write_text("x")
    (ro / "old.csv").chmod(0o444)
    ro.chmod(0o555)
    try:
        rc = main(shlex.split(argv.format(f=inputs, ro=ro)))
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and fragment in err[0], err


def test_cache_path_that_is_a_file(inputs, tmp_path, capsys, monkeypatch):
    """$TRANSFERLAB_CACHE naming a file: one line naming the variable (it used to warn per
    dataset, then decode again on every run)."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(inputs / "afile"))
    rc = main(["pretrain", "--task", str(inputs / "imgs"), "--epochs", "1", "--quiet",
               "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "TRANSFERLAB_CACHE=" in err[0] and "afile is a file" in err[0] and "unset" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_ensemble_out_apart_from_its_members_still_works(inputs, tmp_path, capsys):
    """The data-loss check refuses only overlap: the same members into a new folder run."""
    out = tmp_path / "ens2"
    assert main(shlex.split(f"ensemble --members {inputs}/ens/shift/member0 "
                            f"{inputs}/ens/shift/member1 --task {T8} --strategies independent "
                            f"{FAST} --lr 0.01 --workers 1 --out {out}")) == 0  # (already
    # fine-tuned members: at FAST's lr one of them may diverge, which is not what this tests)
    assert (out / "manifest.json").is_file()


def test_results_csv_beside_the_db_is_written(inputs, tmp_path, capsys):
    csv = tmp_path / "table.csv"
    assert main(["results", str(inputs / "db.sqlite"), "--csv", str(csv)]) == 0
    assert csv.read_text().splitlines()[0].startswith(("protocol", "depth", "sweep"))
