"""A user's mistakes, across every command: exit 2 (or the documented code), ONE line on
stderr naming the offending parameter or file, no traceback, nothing new or changed in the
output location.

Each row is (id, argv, fragment[, exit code]). ``{o}`` is a fresh, empty output folder per
case, ``{f}`` a folder of prepared inputs (never changed by a case), ``{S}`` a tiny source
checkpoint (an mlp on digits at 8 px, no BatchNorm).
"""

from __future__ import annotations

import json
import pickle
import shlex
import sqlite3
from pathlib import Path

import pytest

from transferlab.cli import main

DIVERGED = 3  # exit code of a run whose loss, weights or test NLL are not finite (README)
FAST = "--epochs 1 --batch-size 64 --device cpu --quiet"
T8 = "digits:classes=5-9:size=8"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    f = tmp_path_factory.mktemp("inputs")
    assert main(shlex.split(f"pretrain --task digits:classes=0-4:size=8 --arch mlp "
                            f"--arch-kwargs '{{\"width\": 8}}' {FAST} --out {f}/src")) == 0
    (f / "garbage.json").write_text("{not json")
    (f / "garbage.safetensors").write_bytes(b"\x00" * 64)
    (f / "pickle.safetensors").write_bytes(pickle.dumps({"a": 1}))
    (f / "pickle.json").write_text((f / "src.json").read_text())
    meta = json.loads((f / "src.json").read_text())
    for name, change in {"badtype": {"arch": "mlp"}, "noarch": {"arch": None},
                         "wrongarch": {"arch": {**meta["arch"], "width": 16},
                                       "weights_sha256": None}}.items():
        (f / f"{name}.safetensors").write_bytes((f / "src.safetensors").read_bytes())
        (f / f"{name}.json").write_text(json.dumps({**meta, **change}))
    (f / "orphan.safetensors").write_bytes((f / "src.safetensors").read_bytes())
    (f / "mixed.safetensors").write_bytes((f / "src.safetensors").read_bytes()[:-8] + b"\1" * 8)
    (f / "mixed.json").write_text((f / "src.json").read_text())
    (f / "afile").write_text("x")
    (f / "bad.yaml").write_text("name: [unclosed\n")
    (f / "list.yaml").write_text("- 1\n- 2\n")
    (f / "unknown.yaml").write_text(f"name: x\ntarget: '{T8}'\nsources: {{}}\nbogus: 1\n")
    (f / "sub").mkdir()
    con = sqlite3.connect(f / "other.sqlite")
    con.execute("create table t (x)")
    con.commit()
    con.close()
    (f / "empty_data").mkdir()
    from PIL import Image
    for c in ("a", "b"):
        (f / "imgs" / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(f / "imgs" / "train" / c / f"{i}.png")
    (f / "imgs" / "train" / "c").mkdir()  # an empty class folder
    import numpy as np
    np.savez(f / "obj.npz", x_train=np.array([{"a": 1}] * 4, dtype=object),
             y_train=np.arange(4) % 2)
    np.savez(f / "good.npz", x_train=np.zeros((20, 8, 8), np.uint8), y_train=np.arange(20) % 2)
    (f / "trunc.npz").write_bytes((f / "good.npz").read_bytes()[:300])
    np.savez(f / "nan.npz", x_train=np.full((20, 4), np.nan), y_train=np.arange(20) % 2)
    return f


S = "{f}/src"
CASES = [
    # -- pretrain: tasks
    ("task-unknown-dataset", "pretrain --task bogus --out {o}/m", "dataset 'bogus'"),
    ("task-unknown-key", "pretrain --task digits:nokey=1 --out {o}/m", "nokey"),
    ("task-size-0", "pretrain --task digits:size=0 --out {o}/m", "size=0"),
    ("task-size-huge", "pretrain --task digits:size=100000 --out {o}/m", "size=100000"),
    ("task-one-class", "pretrain --task digits:classes=0 --out {o}/m", "classes"),
    ("task-dup-classes", "pretrain --task digits:classes=0,0 --out {o}/m", "classes"),
    ("task-class-out-of-range", "pretrain --task digits:classes=42 --out {o}/m", "classes"),
    ("task-per-class-negative", "pretrain --task digits:per_class=-1 --out {o}/m", "per_class"),
    ("task-per-class-too-many", "pretrain --task digits:per_class=100000 --out {o}/m",
     "per_class"),
    ("task-fraction-2", "pretrain --task digits:fraction=2 --out {o}/m", "fraction"),
    ("task-val-fraction-1", "pretrain --task digits:val_fraction=1 --out {o}/m", "val_fraction"),
    ("task-half-C", "pretrain --task digits:half=C --out {o}/m", "half"),
    ("task-split-weird", "pretrain --task digits:half=A:split=weird --out {o}/m", "split"),
    ("task-seed-text", "pretrain --task digits:seed=abc --out {o}/m", "seed"),
    ("task-empty", "pretrain --task '' --out {o}/m", "task"),
    ("task-missing-data-dir", "pretrain --task mnist --data-dir {o}/nope --out {o}/m",
     "--data-dir"),
    ("task-data-dir-without-mnist", "pretrain --task mnist --data-dir {f}/empty_data "
     "--out {o}/m", "mnist"),
    ("task-empty-class-folder", "pretrain --task {f}/imgs --out {o}/m", "['c'] hold no images"),
    ("task-npz-object-dtype", "pretrain --task {f}/obj.npz --out {o}/m", "obj.npz"),
    ("task-npz-truncated", "pretrain --task {f}/trunc.npz --out {o}/m", "trunc.npz"),
    ("task-npz-nan", "pretrain --task {f}/nan.npz --out {o}/m", "NaN"),
    # -- pretrain: architecture
    ("arch-unknown", "pretrain --task digits --arch nope --out {o}/m", "arch='nope'"),
    ("arch-width-negative", "pretrain --task digits --arch-kwargs '{{\"width\": -3}}' "
     "--out {o}/m", "width=-3"),
    ("arch-width-string", "pretrain --task digits --arch-kwargs '{{\"width\": \"8\"}}' "
     "--out {o}/m", "width='8'"),
    ("arch-width-huge", "pretrain --task digits --arch-kwargs '{{\"width\": 10000000}}' "
     "--out {o}/m", "'width': 10000000"),
    ("arch-unknown-option", "pretrain --task digits --arch-kwargs '{{\"bogus\": 1}}' "
     "--out {o}/m", "bogus"),
    ("arch-kwargs-list", "pretrain --task digits --arch-kwargs '[1]' --out {o}/m",
     "--arch-kwargs"),
    ("arch-kwargs-bad-json", "pretrain --task digits --arch-kwargs '{{bad' --out {o}/m",
     "--arch-kwargs"),
    # -- pretrain: training numbers
    ("lr-inf", "pretrain --task digits --lr inf --out {o}/m", "lr=inf"),
    ("lr-nan", "pretrain --task digits --lr nan --out {o}/m", "lr=nan"),
    ("lr-zero", "pretrain --task digits --lr 0 --out {o}/m", "lr=0"),
    ("weight-decay-nan", "pretrain --task digits --weight-decay nan --out {o}/m",
     "weight_decay=nan"),
    ("weight-decay-negative", "pretrain --task digits --weight-decay -1 --out {o}/m",
     "weight_decay=-1"),
    ("momentum-1.5", "pretrain --task digits --momentum 1.5 --out {o}/m", "momentum=1.5"),
    ("momentum-nan", "pretrain --task digits --momentum nan --out {o}/m", "momentum=nan"),
    ("max-grad-norm-0", "pretrain --task digits --max-grad-norm 0 --out {o}/m",
     "max_grad_norm=0"),
    ("lr-mult-negative", "pretrain --task digits --lr-mult -1 --out {o}/m", "lr_mult"),
    ("lr-mult-inf", "pretrain --task digits --lr-mult inf --out {o}/m", "lr_mult"),
    ("l2-nan", "pretrain --task digits --l2 nan --out {o}/m", "l2=nan"),
    ("layer-decay-2", "pretrain --task digits --layer-decay 2 --out {o}/m", "layer_decay"),
    ("batch-size-0", "pretrain --task digits --batch-size 0 --out {o}/m", "batch_size=0"),
    ("epochs-negative", "pretrain --task digits --epochs -1 --out {o}/m", "epochs=-1"),
    ("epochs-text", "pretrain --task digits --epochs many --out {o}/m", "--epochs"),
    ("patience-0", "pretrain --task digits --patience 0 --out {o}/m", "patience=0"),
    ("crop-padding-negative", "pretrain --task digits --crop-padding -1 --out {o}/m",
     "crop_padding"),
    ("optimizer-unknown", "pretrain --task digits --optimizer rmsprop --out {o}/m",
     "optimizer"),
    ("schedule-unknown", "pretrain --task digits --schedule linear --out {o}/m", "schedule"),
    ("device-tpu", "pretrain --task digits --device tpu --out {o}/m", "device='tpu'"),
    ("seed-25-digits", "pretrain --task digits --seed 1234567890123456789012345 --out {o}/m",
     "--seed"),
    ("seed-negative", "pretrain --task digits --seed -1 --out {o}/m", "--seed"),
    ("diverged-pretrain", f"pretrain --task digits:size=8 --arch mlp --lr 1e8 --epochs 2 "
     f"--quiet --out {{o}}/m", "diverged", DIVERGED),
    # -- pretrain: outputs
    ("out-folder-slash", "pretrain --task digits --out {o}/new/", "--out"),
    ("out-existing-folder", "pretrain --task digits --out {f}/sub", "--out"),
    ("out-inside-a-file", "pretrain --task digits --out {f}/afile/m", "afile"),
    # -- transfer: sources
    ("source-missing", f"transfer --source {{o}}/nope --task {T8} --out {{o}}/m", "nope"),
    ("source-garbage-json", f"transfer --source {{f}}/garbage --task {T8} --out {{o}}/m",
     "garbage"),
    ("source-pickle", f"transfer --source {{f}}/pickle --task {T8} --out {{o}}/m", "pickle"),
    ("source-sidecar-wrong-type", f"transfer --source {{f}}/badtype --task {T8} "
     "--out {o}/m", "badtype.json"),
    ("source-no-arch", f"transfer --source {{f}}/noarch --task {T8} --out {{o}}/m", "noarch"),
    ("source-arch-mismatch", f"transfer --source {{f}}/wrongarch --task {T8} --out {{o}}/m",
     "wrongarch"),
    ("source-orphan-weights", f"transfer --source {{f}}/orphan --task {T8} --out {{o}}/m",
     "orphan"),
    ("source-mixed-pair", f"transfer --source {{f}}/mixed --task {T8} --out {{o}}/m",
     "mismatched pair"),
    ("source-is-folder", f"transfer --source {{f}}/sub --task {T8} --out {{o}}/m", "sub"),
    # -- transfer: source/target mismatch, protocols, outputs
    ("target-other-size", f"transfer --source {S} --task digits:classes=5-9:size=16 {FAST} "
     "--out {o}/m", "size=8"),
    ("target-other-channels", f"transfer --source {S} --task {T8}:channels=3 {FAST} "
     "--out {o}/m", "channels=1"),
    ("protocol-unknown", f"transfer --source {S} --task {T8} --protocol bogus --out {{o}}/m",
     "protocol='bogus'"),
    ("protocol-depth-too-big", f"transfer --source {S} --task {T8} --protocol freeze:99 "
     "--out {o}/m", "depth=99"),
    ("protocol-no-depth", f"transfer --source {S} --task {T8} --protocol freeze "
     "--out {o}/m", "freeze"),
    ("protocol-unwanted-depth", f"transfer --source {S} --task {T8} --protocol finetune:3 "
     "--out {o}/m", "finetune"),
    ("protocol-block-unknown", f"transfer --source {S} --task {T8} --protocol freeze:conv9 "
     "--out {o}/m", "conv9"),
    ("bn-only-without-batchnorm", f"transfer --source {S} --task {T8} --protocol bn-only "
     f"{FAST} --out {{o}}/m", "train_kinds='bn' is invalid for this model"),
    ("out-is-source", f"transfer --source {S} --task {T8} --out {S}.safetensors",
     "overwrite the source"),
    ("transfer-lr-inf-json", f"transfer --source {S} --task {T8} --lr inf --json "
     "--out {o}/m", "lr=inf"),
    # -- sweep
    ("sweep-spec-missing", "sweep {o}/nope.yaml --db {o}/db.sqlite", "nope.yaml"),
    ("sweep-spec-bad-yaml", "sweep {f}/bad.yaml --db {o}/db.sqlite", "bad.yaml"),
    ("sweep-spec-not-mapping", "sweep {f}/list.yaml --db {o}/db.sqlite", "list.yaml"),
    ("sweep-spec-unknown-key", "sweep {f}/unknown.yaml --db {o}/db.sqlite", "bogus"),
    ("sweep-protocol-unknown", f"sweep --source {S} --target {T8} --protocols bogus "
     "--db {o}/db.sqlite", "bogus"),
    ("sweep-seeds-0", f"sweep --source {S} --target {T8} --seeds 0 --db {{o}}/db.sqlite",
     "seed"),
    ("sweep-depth-too-big", f"sweep --source {S} --target {T8} --depths 99 "
     "--db {o}/db.sqlite", "99"),
    ("sweep-db-not-sqlite", f"sweep --source {S} --target {T8} --db {{f}}/afile", "afile"),
    ("sweep-db-other-sqlite", f"sweep --source {S} --target {T8} --db {{f}}/other.sqlite",
     "other.sqlite"),
    ("sweep-workers-0", f"sweep --source {S} --target {T8} --workers 0 --db {{o}}/db.sqlite",
     "workers"),
    # -- results
    ("results-missing", "results {o}/nope.sqlite", "nope.sqlite"),
    ("results-not-sqlite", "results {f}/afile", "afile"),
    ("results-other-sqlite", "results {f}/other.sqlite", "other.sqlite"),
    # -- study
    ("study-unknown", "study bogus", "bogus"),
    ("study-dataset-unknown", "study yosinski --dataset bogus --out {o}/s", "bogus"),
    ("study-budget-unknown", "study yosinski --budget huge --out {o}/s", "--budget"),
    ("study-seeds-0", "study yosinski --seeds 0 --out {o}/s", "--seeds"),
    ("study-depth-too-big", "study yosinski --depths 99 --out {o}/s", "--depths"),
    ("study-out-is-file", "study yosinski --out {f}/afile", "afile"),
    ("study-half-classes", "study yosinski --classes-a 0-4 --out {o}/s", "--classes-b"),
    # -- similarity / weights / datasets
    ("similarity-b-missing", f"similarity --a {S} --b {{o}}/nope --task {T8} --out {{o}}/sim",
     "nope"),
    ("similarity-metric-unknown", f"similarity --a {S} --b {S} --task {T8} --metric bogus "
     "--out {o}/sim", "--metric"),
    ("similarity-task-other-size", f"similarity --a {S} --b {S} --task digits:size=16 "
     "--out {o}/sim", "model_a"),
    ("similarity-n-samples-1", f"similarity --a {S} --b {S} --task {T8} --n-samples 1 "
     "--out {o}/sim", "--n-samples"),
    ("similarity-out-is-file", f"similarity --a {S} --b {S} --task {T8} --out {{f}}/afile",
     "afile"),
    ("weights-after-missing", f"weights --before {S} --after {{o}}/nope --out {{o}}/w", "nope"),
    ("weights-out-is-file", f"weights --before {S} --after {S} --out {{f}}/afile", "afile"),
    ("datasets-data-dir-missing", "datasets --data-dir {o}/nope", "--data-dir"),
    # -- rank
    ("rank-metric-unknown", f"rank --source {S} --depths all --task {T8} --metric bogus",
     "bogus"),
    ("rank-no-source", f"rank --task {T8}", "--source"),
    ("rank-source-missing", f"rank --sources {{o}}/nope {S} --task {T8}", "nope"),
    ("rank-one-per-class", f"rank --source {S} --depths all --task {T8}:per_class=1",
     "per class"),
]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def test_the_table_is_large_and_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, inputs, tmp_path, capsys):
    name, argv, fragment, *code = case
    out = tmp_path / "out"
    out.mkdir()
    before = _snapshot(inputs)
    argv = shlex.split(argv.format(o=out, f=inputs))
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == (code[0] if code else 2), err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert fragment in err[0], err[0]
    assert _snapshot(out) == {}, f"{name} left {sorted(_snapshot(out))}"
    assert _snapshot(inputs) == before, f"{name} changed its inputs"
