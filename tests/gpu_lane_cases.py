"""The CUDA lane's cases, one function per feature: ``case(device, tmp)`` runs the feature
on ``device`` and returns what is compared between devices (``compare``).

``tests/test_gpu_lane.py`` runs each case on ``cuda`` and on ``cpu`` and compares;
``tests/test_gpu_lane_selfcheck.py`` runs a few of them ``cpu`` against ``cpu`` on any
machine, so the code path of the lane is checked where there is no GPU.

Device selection: the cases pass ``device`` explicitly where the API takes one
(``TrainConfig.device``, ``block_similarity(device=)``, ``.to(device)``); studies and
``advise`` have no device option (their trials use ``device="auto"``), so ``on_device``
runs them with CUDA hidden (``torch.cuda.is_available`` patched to False) for the CPU side.
That patch only reaches trials run in this process: those callers get ``workers=1``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

SRC_TASK = "digits:classes=0-4:size=8"
TGT_TASK = "digits:classes=5-9:size=8"
ARCH = {"width": 4, "fc_width": 16}
# bf16 off where a case compares trained accuracies: autocast would add its own rounding
# on CUDA only; the lane compares devices, not precisions (``test_bf16_autocast_runs``
# covers the default bf16 path).
TRAIN = {"epochs": 2, "batch_size": 64, "bf16": False}
SEED = 0


@contextlib.contextmanager
def on_device(device: str):
    """Run ``device="auto"`` code on ``device``: CUDA hidden for "cpu", as is otherwise."""
    if device == "cpu" and torch.cuda.is_available():
        with mock.patch("torch.cuda.is_available", return_value=False):
            yield
    else:
        yield


@contextlib.contextmanager
def strict_fp32():
    """TF32 off (cuDNN convolutions use it by default): CUDA float32 then differs from the
    CPU only by summation order, ~1e-6 relative, so analyses compare at 1e-4."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def compare(a: dict, b: dict, tol: dict[str, float], default: float | None = None) -> None:
    """``a`` and ``b`` have the same keys; numbers under key k differ by at most
    ``tol[prefix of k]`` (or ``default``); tensors under a key whose tolerance is 0 are
    bit-equal; other values are equal. Tolerances: the keys of ``tol`` are prefixes."""
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    for k in a:
        t = next((v for p, v in tol.items() if k.startswith(p)), default)
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor):
            if t == 0:
                assert torch.equal(x, y), k
            else:
                torch.testing.assert_close(x.double(), y.double(), rtol=t, atol=t, msg=k)
        elif isinstance(x, (float, int, np.floating)) and not isinstance(x, bool) \
                and t is not None:
            assert y is not None and abs(float(x) - float(y)) <= t, (k, x, y, t)
        else:
            assert x == y, (k, x, y)


# -- sources ----------------------------------------------------------------------------

_SOURCES: dict[str, object] = {}


def source(device: str = "cpu"):
    """A small pretrained convnet (BatchNorm, 7 blocks) on digits 0-4, trained on
    ``device``; cached per device for the session. Returned on the CPU."""
    if device not in _SOURCES:
        from transferlab.api import pretrain
        from transferlab.data import make_task

        res = pretrain(make_task(SRC_TASK), "convnet", {**TRAIN, "epochs": 4, "device": device},
                       seed=SEED, progress=False, **ARCH)
        _SOURCES[device] = res
    return _SOURCES[device].model


def source_checkpoint(tmp: Path) -> str:
    """The CPU-trained source saved under ``tmp`` (the same weights for both devices)."""
    from transferlab.checkpoint import save_checkpoint

    path = tmp / "src"
    if not path.with_suffix(".safetensors").is_file():
        save_checkpoint(path, source("cpu"), {"task": SRC_TASK, "classes": list("01234")})
    return str(path.with_suffix(".safetensors"))


# -- cases ----------------------------------------------------------------------------

def case_pretrain(device: str, tmp: Path) -> dict:
    """Pretraining: epochs=0 keeps the seeded initialisation (built on the CPU under the
    seed, head drawn by the init helper), so it is bit-equal across devices; trained 4
    epochs (float32, TF32 off), accuracy within 0.06 (summation order alone shifts a few
    of the ~300 test predictions after ~40 steps)."""
    from transferlab.api import pretrain
    from transferlab.data import make_task

    task = make_task(SRC_TASK)
    init = pretrain(task, "convnet", {**TRAIN, "epochs": 0, "device": device}, seed=SEED,
                    progress=False, **ARCH).model
    with strict_fp32():
        source(device)
    out = {f"init.{k}": v for k, v in init.state_dict().items()}
    out["test_acc"] = _SOURCES[device].metrics["test_acc"]
    out["outcome"] = _SOURCES[device].metrics["outcome"]
    return out


def registered_protocols() -> list[str]:
    """Every registered protocol, with a depth (2) for those that take one."""
    from transferlab.protocols import protocol_names

    return [n.replace(":n", ":2") for n in protocol_names()]


def case_plan(device: str, tmp: Path, protocol: str) -> dict:
    """The model a protocol's plan makes (re-initialised blocks, new head, a cut model):
    drawn on the CPU and copied, so bit-equal on every device (the init helper's point)."""
    from transferlab.protocols import get_protocol

    model = copy.deepcopy(source_for(protocol)).to(device)
    get_protocol(protocol).config.plan(model, 5, torch.Generator().manual_seed(SEED))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def source_for(protocol: str):
    """The pretrained convnet, except for ``layer-mix``, which mixes blocks of one width
    (text encoders): a seeded random MLP of width 16 for it. (``continue*`` keep the
    source's head: it has the target's 5 outputs already.)"""
    if protocol.startswith("layer-mix"):
        from transferlab.models import build_model

        torch.manual_seed(SEED)
        return build_model("mlp", 5, in_channels=1, image_size=8, width=16, depth=3)
    return source("cpu")


def case_transfer(device: str, tmp: Path, protocol: str) -> dict:
    """``transfer`` with ``protocol`` (2 epochs, float32, TF32 off): outcome, accuracy
    (within 0.06: the devices differ only in summation order, ~1e-6 relative, which ~20
    SGD steps grow into a few of ~300 test predictions; L-BFGS protocols converge to the
    same optimum, well inside it)."""
    from transferlab.api import transfer
    from transferlab.data import make_task

    with strict_fp32():
        res = transfer(source_for(protocol), make_task(TGT_TASK), protocol,
                       {**TRAIN, "device": device}, seed=SEED, progress=False)
    assert next(res.model.parameters()).device.type == "cpu"  # results come back on the CPU
    return {"test_acc": res.metrics["test_acc"], "val_acc": res.metrics["val_acc"],
            "outcome": res.metrics["outcome"], "depth": res.metrics["depth"],
            "trainable_params": res.metrics["trainable_params"]}


def case_sweep(device: str, tmp: Path) -> dict:
    """A sweep on the local backend with two worker processes (spawned; CUDA in each):
    every trial done, accuracy per trial within 0.06."""
    from transferlab.sweep import run_sweep

    spec = {"name": "lane", "target": TGT_TASK,
            "sources": {"s": {"checkpoint": source_checkpoint(tmp)}},
            "axes": {"protocol": ["freeze:2", "linear-probe", "finetune"], "seed": [0]},
            "train": {**TRAIN, "device": device}}
    # TF32 off in the spawned workers too (they inherit the environment)
    with mock.patch.dict(os.environ, {"NVIDIA_TF32_OVERRIDE": "0"}):
        df = run_sweep(spec, tmp / f"sweep-{device}.sqlite", workers=2, progress=False)
    assert (df["status"] == "done").all(), df["error"].dropna().tolist()
    return {f"acc.{p}": float(a) for p, a in zip(df["protocol_spec"], df["test_acc"])}


def case_similarity(device: str, tmp: Path) -> dict:
    """Block-by-block linear CKA of the source against a fine-tuned copy, computed on
    ``device``: TF32 off, so equal to 1e-4."""
    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.similarity.blockwise import block_similarity

    task = make_task(TGT_TASK)
    tuned = transfer(source("cpu"), task, "finetune", {**TRAIN, "device": "cpu"},
                     seed=SEED, progress=False).model
    with strict_fp32():
        m = block_similarity(source("cpu").to(device), tuned.to(device), task.x_test[:200],
                             metric="linear_cka", device=device)
    return {"cka": torch.as_tensor(np.asarray(m))}


def case_rank(device: str, tmp: Path) -> dict:
    """Every transferability estimator on the model and task moved to ``device``: TF32
    off; scores within 1e-3 relative (LogME's fixed point and H-score's inverse amplify
    the ~1e-6 summation-order differences of the features)."""
    from transferlab.data import make_task
    from transferlab.transferability import ESTIMATORS
    from transferlab.transferability.score import score_all

    task = make_task(TGT_TASK).to(device)
    with strict_fp32():
        rows = score_all(copy.deepcopy(source("cpu")).to(device).eval(), task, list(ESTIMATORS))
    return {f"score.{r['metric']}": float(r["score"]) for r in rows}


def case_depth(device: str, tmp: Path) -> dict:
    """``best_depth`` on its known-answer case (test_depth_search: blocks >= 3 collapse
    the input): a depth <= 2 on every device, validation accuracy > 0.9."""
    from test_depth_search import NOCAP

    from transferlab.data import from_arrays, make_task
    from transferlab.models import build_model
    from transferlab.search import best_depth

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 12)) * 3
    y = rng.integers(0, 3, 400)
    x = centres[y] + rng.standard_normal((400, 12))
    task = make_task("vec", dataset=from_arrays(x, y, name="vec"))
    torch.manual_seed(0)
    model = build_model("mlp", 3, **task.model_kwargs, width=16, depth=4)
    with torch.no_grad():
        model.blocks[2][0].weight.zero_()
        model.blocks[2][0].bias.fill_(1.0)
    res = best_depth(model, task, budget=NOCAP, seeds=(0,),
                     train={"epochs": 5, "batch_size": 32, "lr": 0.05, "device": device})
    assert res.depth <= 2 and res.val_acc > 0.9, res.to_dict()
    return {"depth_ok": True, "val_acc": res.val_acc}


def case_advise(device: str, tmp: Path) -> dict:
    """``advise`` with ``verify``: the evidence (measured on the CPU) and so the
    recommendation are the same on both devices; the race's trials run on ``device``
    (auto): none fails, the winner's validation accuracy within 0.1 (a race of a few
    tiny trials: one seed, 2 epochs, ~45 validation examples)."""
    from transferlab.advise import advise

    with on_device(device):
        adv = advise(source_checkpoint(tmp), "digits:classes=5-9:per_class=20:size=8",
                     verify=True, budget="tiny", seeds=1, progress=False, workers=1,
                     out=str(tmp / f"advise-{device}"))
    assert adv.race["trial_failures"] is None, adv.race["trial_failures"]
    return {"recommendation": adv.recommendation.label,
            "winner_val_acc": adv.race["winner_val_acc"]}


def case_ensemble(device: str, tmp: Path) -> dict:
    """Ensemble strategies (independent, shift, tiny) and adding a member to the saved
    shift ensemble on ``device`` (float32, TF32 off): ensemble accuracy per strategy within
    0.08 (two members of ~35-step runs on 100 training images; ~0.67 on the CPU)."""
    from transferlab.ensemble import add_member, transfer_ensemble

    out = tmp / f"ens-{device}"
    train = {"epochs": 5, "batch_size": 16, "lr": 0.05, "bf16": False, "device": device}
    with strict_fp32():  # workers=1: the trials run in this process
        res = transfer_ensemble("digits:classes=5-9:per_class=20:size=8",
                                pretrain="digits:classes=0-4:per_class=40:size=8",
                                n_members=2, strategies=["independent", "shift", "tiny"],
                                train=train, pretrain_train={"epochs": 10, "batch_size": 32,
                                                             "bf16": False, "device": device},
                                workers=1, out=str(out), arch_kwargs=ARCH)
        added = add_member(out, res.members[1], "shift", compare=False)
    got = {f"acc.{r['strategy']}": r["accuracy"] for r in res.rows}
    got["added_members"] = added["after"]["members"]
    return got


# -- studies (smallest budgets; the CPU side with CUDA hidden) ------------------------

def _means(cells, key_fields, value="mean") -> dict:
    return {"cell." + "/".join(str(c[f]) for f in key_fields): c[value] for c in cells
            if c.get(value) is not None}


def study_yosinski(device: str, tmp: Path) -> dict:
    from transferlab.studies import yosinski

    with on_device(device):
        curves = yosinski.run("digits", budget="tiny", seeds=1, split_seeds=[0], depths=[2],
                              out=tmp / f"yos-{device}", workers=1, progress=False)
    return {"failures": curves["trial_failures"],
            **{f"cell.{n}": c["mean"][0] for n, c in curves["conditions"].items()}}


def study_fewshot(device: str, tmp: Path) -> dict:
    from transferlab.studies import fewshot

    with on_device(device):
        res = fewshot.run(pretrain="digits", budget="tiny", shots=[4], episodes=2,
                          protocols=["linear-probe", "bn-only", "finetune"], weights=False,
                          out=tmp / f"fs-{device}", workers=1, progress=False)
    return {"failures": res["trial_failures"], **_means(res["cells"], ("protocol", "shots"))}


def study_defrost(device: str, tmp: Path) -> dict:
    from transferlab.studies import get_study

    study = get_study("defrost")
    with on_device(device):
        res = study.run(study.config(synthetic=True, budget="tiny", seeds=1, depths=[0, 2],
                                     out=str(tmp / f"df-{device}"), workers=1), progress=False)
    return {"failures": res["trial_failures"],
            **_means(res["cells"], ("target_size", "correlation", "depth"))}


def study_guide(device: str, tmp: Path) -> dict:
    from transferlab.studies import get_study
    from transferlab.studies.guide.config import GuideConfig

    with on_device(device):
        res = get_study("guide").run(GuideConfig(cases="smoke", roles="fit", budget="tiny",
                                                 seeds=1, workers=1,
                                                 out=str(tmp / f"guide-{device}")),
                                     progress=False)
    out = {"failures": res["trial_failures"]}
    for case in res["cases"]:
        out.update({f"cell.{case['name']}/{k}": v for k, v in case["acc"].items()})
    return out


def study_ensembles(device: str, tmp: Path) -> dict:
    from transferlab.studies import get_study

    study = get_study("ensembles")
    with on_device(device):
        res = study.run(study.config(pair="digits", members=2, seeds=1, budget="tiny",
                                     workers=1, out=str(tmp / f"ensst-{device}")),
                        progress=False)
    return {f"cell.{r['strategy']}": r["accuracy"] for r in res["strategies"]}


def study_text(device: str, tmp: Path) -> dict:
    """The text study on a random 2-layer BERT and a toy CSV (as tests/test_study_text.py;
    MiniLM's weights are not needed)."""
    pytest.importorskip("transformers")
    from test_text_tasks import toy_rows, write_csv

    from transferlab.checkpoint import save_checkpoint
    from transferlab.models import build_model
    from transferlab.studies import get_study

    csv_path = write_csv(tmp / "toy.csv", toy_rows(60))
    torch.manual_seed(0)
    model = build_model("bert", 3, vocab_size=259, hidden_size=8, num_layers=2,
                        intermediate_size=16)
    save_checkpoint(tmp / "bert", model, {"task": "random", "classes": ["a", "b", "c"]})
    study = get_study("text")
    with on_device(device):
        res = study.run(study.config(source=str(tmp / "bert"),
                                     task=f"csv:path={csv_path}:tokenizer=bytes",
                                     max_length=16, shots=[4], full=False, episodes=2,
                                     depths=[1], workers=1, out=str(tmp / f"text-{device}")),
                        progress=False)
    return {"failures": res["trial_failures"],
            **{f"cell.{r}/{c}": s["mean"] for r, conds in res["stats"].items()
               for c, s in conds.items()}}


STUDIES = {"yosinski": study_yosinski, "fewshot": study_fewshot, "defrost": study_defrost,
           "guide": study_guide, "ensembles": study_ensembles, "text": study_text}


def compare_study(a: dict, b: dict) -> None:
    """No failed trial on either device (what the H200 showed: every trial crashed); the
    same cells; each cell's mean accuracy within 0.2 and their mean absolute difference
    under 0.08. Why so loose: the studies' tiny budgets are one seed of a few steps on tens
    of examples, and their trials use the defaults (bf16 autocast, TF32 on CUDA). Most
    tiny cells sit at chance on the CPU (measured: yosinski, ensembles, guide), so for
    accuracy these checks say little; the protocol, sweep and ensemble cases above are
    the accuracy checks. Here the point is that every study runs on CUDA end to end."""
    assert a.get("failures") is None and b.get("failures") is None, (a.get("failures"),
                                                                    b.get("failures"))
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    cells = [k for k in a if k.startswith("cell.")]
    assert cells
    diffs = [abs(float(a[k]) - float(b[k])) for k in cells]
    assert max(diffs) <= 0.2 and float(np.mean(diffs)) <= 0.08, dict(zip(cells, diffs))


def adapter_transfer(device: str, tmp: Path, lib: str) -> dict:
    """A torchvision / timm resnet18 (random weights, nothing downloaded) wrapped as a
    BlockModel and transferred (freeze:3 and finetune, 1 epoch) on a 3-channel 32 px digits
    task: the plan's weights bit-equal across devices, accuracy within 0.1 (one epoch of
    a resnet18 from random weights on 100 images: a weak, noisy learner)."""
    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.models import timm_model, torchvision_model
    from transferlab.protocols import get_protocol

    pytest.importorskip(lib)
    torch.manual_seed(0)
    model = (torchvision_model("resnet18", num_classes=10, weights=None) if lib == "torchvision"
             else timm_model("resnet18", num_classes=10, pretrained=False))
    task = make_task("digits:classes=5-9:per_class=20:size=32:channels=3")
    planned = copy.deepcopy(model).to(device)
    get_protocol("reinit:4").config.plan(planned, 5, torch.Generator().manual_seed(1))
    out = {f"plan.{k}": v.detach().cpu() for k, v in planned.state_dict().items()}
    for protocol in ("freeze:3", "finetune"):
        res = transfer(model, task, protocol, {"epochs": 1, "batch_size": 32, "bf16": False,
                                               "device": device}, seed=0, progress=False)
        out[f"acc.{protocol}"] = res.metrics["test_acc"]
        out[f"outcome.{protocol}"] = res.metrics["outcome"]
    return out


def write_json(path: Path, obj: dict) -> None:
    """For debugging a lane failure: what each device gave (tensors summarised)."""
    path.write_text(json.dumps({k: (float(v.double().sum()) if isinstance(v, torch.Tensor)
                                    else v) for k, v in obj.items()}, default=str, indent=1))
