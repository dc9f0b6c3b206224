"""transferlab.ensemble: the shift's arithmetic, the kept head, strategies end to end on
digits (shared trials, resumption, epochs), the saved manifest with add/predict, and bad
input as one line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferlab.api import pretrain, transfer
from transferlab.checkpoint import load_checkpoint, save_checkpoint
from transferlab.cli import main
from transferlab.data import make_task
from transferlab.ensemble import (add_member, apply_shift, get_strategy, predict,
                                  shift_vector, transfer_ensemble)
from transferlab.ensemble.shift import AUTO_ALPHAS
from transferlab.errors import UserError
from transferlab.metrics import ensemble_metrics

SRC = "digits:classes=0-4:per_class=40:size=16"
TGT = "digits:classes=5-9:per_class=20:size=16"
ONLY = "shift-only:head=reference:alpha=1.0"  # the paper's settings (the default probes)
TRAIN = {"epochs": 2, "batch_size": 16, "lr": 0.05}
PRE = {"epochs": 2, "batch_size": 32}


@pytest.fixture(scope="module")
def models(saved):
    return [load_checkpoint(p)[0] for p in saved[1].members[:2]]


def test_shift_by_own_delta_reproduces_the_fine_tuned_encoder(models):
    task = make_task(TGT)
    src = models[0]
    tuned = transfer(src, task, "finetune", TRAIN, seed=0, progress=False).model
    delta = shift_vector([src], [tuned], bn="shift")
    gen = torch.Generator().manual_seed(0)
    same = apply_shift(src, delta, 1.0, tuned, task.num_classes, gen, bn="shift")
    for (k, a), b in zip(same.state_dict().items(), tuned.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-6), k
    # alpha scales exactly the encoder's parameters; the head is the reference's copy
    other = models[1]
    half = apply_shift(other, delta, 0.5, tuned, task.num_classes, gen, bn="shift")
    params = {n for n, _ in other.blocks.named_parameters()}
    for k, v in half.blocks.state_dict().items():
        if k in params:
            want = other.blocks.state_dict()[k].double() + 0.5 * delta[k]
            assert torch.allclose(v.double(), want, atol=1e-6), k
    assert torch.equal(half.head.weight, tuned.head.weight)
    # reestimated statistics: the running mean of the first BatchNorm is its input's mean
    re = apply_shift(other, delta, 0.5, None, task.num_classes, gen, bn="reestimate",
                     target_x=task.x_train)
    bn = next(m for m in re.blocks.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = re.blocks[0][0]
    with torch.no_grad():
        mean = conv(task.x_train).mean((0, 2, 3))
    assert torch.allclose(bn.running_mean, mean, atol=1e-4)
    assert re.head.weight.shape == (5, tuned.head.weight.shape[1])



def test_probe_head_is_the_linear_probe_of_the_shifted_encoder(models):
    """head='probe': the encoder is exactly the shifted one and the head is what the
    L-BFGS probe fits on that encoder's own features (computed here independently)."""
    from transferlab.features import prefix_features
    from transferlab.models.heads import replace_head
    from transferlab.protocols.linear_probe import fit_probe

    task = make_task(TGT)
    src, other = models
    tuned = transfer(src, task, "finetune", TRAIN, seed=0, progress=False).model
    delta = shift_vector([src], [tuned], bn="shift")
    data = (task.x_train, task.y_train, task.x_val, task.y_val)
    got = apply_shift(other, delta, 2.0, None, task.num_classes,
                      torch.Generator().manual_seed(0), bn="shift", probe=data)
    plain = apply_shift(other, delta, 2.0, None, task.num_classes,
                        torch.Generator().manual_seed(0), bn="shift")
    for k, v in plain.blocks.state_dict().items():
        assert torch.equal(got.blocks.state_dict()[k], v), k
    want = plain
    replace_head(want, task.num_classes, torch.Generator().manual_seed(0))
    want.eval()
    with torch.no_grad():
        # fitted on the train split only: the val split then chooses alpha
        info = fit_probe(want, prefix_features(want, task.x_train, want.num_blocks),
                         task.y_train, prefix_features(want, task.x_val, want.num_blocks),
                         task.y_val, refit=False)
    assert info["refit_examples"] == len(task.y_train)
    torch.testing.assert_close(got.head.weight, want.head.weight, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="probe fits a fresh head"):
        apply_shift(other, delta, 1.0, tuned, task.num_classes,
                    torch.Generator().manual_seed(0), bn="shift", probe=data)

def test_continue_protocols_keep_the_head_and_train_what_they_say(models):
    task = make_task(TGT)
    tuned = transfer(models[0], task, "finetune", TRAIN, seed=0, progress=False).model
    kept = transfer(tuned, task, "continue", {**TRAIN, "epochs": 0}, progress=False)
    assert torch.equal(kept.model.head.weight, tuned.head.weight)
    assert kept.metrics["test_acc"] == pytest.approx(
        transfer(tuned, task, "continue-head-only", {**TRAIN, "epochs": 0},
                 progress=False).metrics["test_acc"])
    head = transfer(tuned, task, "continue-head-only", TRAIN, progress=False).model
    assert not torch.equal(head.head.weight, tuned.head.weight)
    for a, b in zip(head.blocks.parameters(), tuned.blocks.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="keeps the model's head, which has 5 outputs"):
        transfer(tuned, make_task("digits:classes=0-2:size=16"), "continue", TRAIN,
                 progress=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "out"
    strategies = ["independent", "shift", ONLY, "tiny", "head-only:epochs=2"]
    res = transfer_ensemble(TGT, pretrain=SRC, n_members=2, strategies=strategies,
                            train=TRAIN, pretrain_train=PRE, workers=1, out=str(out))
    return out, res


def test_strategies_share_trials_count_epochs_and_report_their_probs(saved):
    out, res = saved
    rows = {r["strategy"]: r for r in res.rows}
    assert list(rows) == ["independent", "shift", ONLY, "tiny", "head-only:epochs=2"]
    ind, sh = res.runs["independent"], res.runs["shift"]
    # the reference of shift is independent's member 0: one trial, identical outputs
    assert sh.trials[0].key == ind.trials[0].key
    assert np.array_equal(res.probs["shift"][0], res.probs["independent"][0])
    assert np.array_equal(res.probs[ONLY][0], res.probs["independent"][0])
    # the default shift is the best measured variant: alpha picked on validation from the
    # four candidates, the head probed on each member's features, the tiny fine-tune on norms
    assert sh.extra["alpha"] in AUTO_ALPHAS and set(sh.extra["alpha_val_acc"]) == set(
        AUTO_ALPHAS)
    e = TRAIN["epochs"]
    assert [rows[k]["epochs"] for k in rows] == [2 * e, e + 1, e, 2, 4]
    for label, r in rows.items():
        want = ensemble_metrics(res.probs[label], res.labels)
        assert r["accuracy"] == want["accuracy"] and r["nll"] == pytest.approx(want["nll"])
        assert r["wall_time_s"] > 0 and r["members"] == 2
    # shift-only's (paper settings) shifted members are exactly the shifted models, evaluated
    task = make_task(TGT)
    srcs = [load_checkpoint(p)[0] for p in res.members]
    from transferlab.sweep import load_trial_model
    from transferlab.sweep.artifacts import predict_probs

    tuned = load_trial_model(res.context.db, ind.trials[0].key)[0]
    delta = shift_vector(srcs[:1], [tuned])
    shifted = apply_shift(srcs[1], delta, 1.0, tuned, 5, torch.Generator(), "reestimate",
                          task.x_train, TRAIN["batch_size"])
    assert np.allclose(predict_probs(shifted, task.x_test).numpy(),
                       res.probs[ONLY][1], atol=1e-5)
    assert rows["independent"]["accuracy"] > 0.3  # chance is 0.2 (2 epochs, 15 per class)


def test_fused_members_equal_the_plain_members(saved, tmp_path):
    """``fuse=True``: independent's members fine-tuned as one fused model (two sources of one
    architecture) give the members' probabilities of the plain runs."""
    from transferlab.sweep import load_results

    _, res = saved
    db = tmp_path / "fused.sqlite"
    got = transfer_ensemble(TGT, members=res.members, strategies=["independent"],
                            train=TRAIN, workers=1, db=str(db), fuse=True)
    assert (load_results(db)["fused_trials"] == 2).all()
    np.testing.assert_allclose(got.probs["independent"], res.probs["independent"],
                               atol=1e-4, rtol=0)


def test_rerun_resumes_from_the_store(saved):
    out, res = saved
    from transferlab.sweep import load_results

    before = load_results(out / "ensemble.sqlite")
    again = transfer_ensemble(TGT, pretrain=SRC, n_members=2, strategies=["shift"],
                              train=TRAIN, pretrain_train=PRE, workers=1,
                              db=str(out / "ensemble.sqlite"))
    after = load_results(out / "ensemble.sqlite")
    assert len(after) == len(before)  # nothing ran again: the shifted members were reused
    assert np.array_equal(again.probs["shift"], res.probs["shift"])
    # The reused trials report the times they recorded when they ran, so the strategy's
    # trial time is the same to the bit; only the driver's own work (alpha pick, shift
    # vector), which runs again, is timed afresh (not compared: a wall clock under load).
    def trial_time(run):
        return sum(t.time_s for t in run.trials)

    assert trial_time(again.runs["shift"]) == trial_time(res.runs["shift"])


def test_manifest_predict_and_add(saved, tmp_path):
    out, res = saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["strategies"]) == {r["strategy"] for r in res.rows}
    scored = predict(out, "shift")
    assert scored["shift"]["metrics"]["accuracy"] == pytest.approx(
        {r["strategy"]: r for r in res.rows}["shift"]["accuracy"])
    new = tmp_path / "new"  # a copy of a source member is a valid new member
    save_checkpoint(new, load_checkpoint(res.members[1])[0], {"task": SRC})
    added = add_member(out, str(new) + ".safetensors", "shift")
    assert added["member"] == 2 and added["after"]["members"] == 3
    assert added["add_time_s"] > 0 and added["full_time_s"] > 0
    assert added["time_ratio"] == pytest.approx(added["add_time_s"] / added["full_time_s"])
    assert len(json.loads((out / "manifest.json").read_text())
               ["strategies"]["shift"]["members"]) == 3
    assert predict(out, "shift")["shift"]["metrics"]["members"] == 3
    with pytest.raises(UserError, match="has no shift vector"):
        add_member(out, str(new), "independent")


def test_cli_add_and_predict_read_the_manifest(saved, tmp_path, capsys):
    out, res = saved
    rc = main(["ensemble", "predict", "--ensemble", str(out), "--strategy", "independent",
               "--save-probs", str(tmp_path / "p.npz"), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["strategies"][0]["accuracy"] == pytest.approx(res.rows[0]["accuracy"])
    assert np.load(tmp_path / "p.npz")["independent"].shape == res.probs["independent"].shape
    before = len(json.loads((out / "manifest.json").read_text())["strategies"]["shift"]
                 ["members"])
    # the same source file again is refused (tests/test_bad_input_classes.py); a copy is new
    assert main(["ensemble", "add", "--ensemble", str(out), "--source", res.members[0],
                 "--no-compare", "--quiet"]) == 2
    assert "already the ensemble's source" in capsys.readouterr().err
    new = tmp_path / "copy"
    save_checkpoint(new, load_checkpoint(res.members[0])[0], {"task": SRC})
    rc = main(["ensemble", "add", "--ensemble", str(out), "--source", str(new),
               "--no-compare", "--json", "--quiet"])
    assert rc == 0
    added = json.loads(capsys.readouterr().out)
    assert added["member"] == before and "full_time_s" not in added
    assert main(["ensemble", "predict", "--ensemble", str(tmp_path / "none")]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_cli_json_prints_every_strategy(saved, capsys):
    out, res = saved
    rc = main(["ensemble", "--members", *res.members, "--task", TGT, "--strategies",
               "independent,shift", "--epochs", "2", "--batch-size", "16",
               "--db", str(out / "ensemble.sqlite"), "--workers", "1", "--json", "--quiet"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert set(rows) == {"independent", "shift"}
    for r in rows.values():
        assert {"accuracy", "nll", "ece", "brier", "disagreement", "member_accuracy",
                "wall_time_s", "epochs"} <= set(r)
    assert rows["shift"]["accuracy"] == pytest.approx(
        {r["strategy"]: r for r in res.rows}["shift"]["accuracy"])


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory):
    p = tmp_path_factory.mktemp("mlp") / "mlp"
    model = pretrain(make_task(SRC), "mlp", {"epochs": 0}, progress=False, width=8).model
    save_checkpoint(p, model, {"task": SRC})
    return str(p) + ".safetensors"


@pytest.mark.parametrize("args, match", [
    (["--strategies", "shift", "--members", "{a}"], "members=1 is invalid: allowed is at "
                                                    "least references \\+ 1 = 2"),
    (["--strategies", "shift:alpha=inf", "--members", "{a}", "{a}"], "alpha=inf is invalid"),
    (["--strategies", "shift:alpha=nan", "--members", "{a}", "{a}"], "alpha=nan is invalid"),
    (["--strategies", "independent", "--members", "{a}", "{m}"],
     "member 1 .* has another architecture than member 0"),
    (["--strategies", "bagging", "--members", "{a}"], "strategy='bagging' is invalid"),
    (["--strategies", "shift:beta=1", "--members", "{a}", "{a}"], "option 'beta=1'"),
    (["--strategies", "shift:scope=bn", "--members", "{a}", "{a}"], "scope='bn' is invalid"),
    (["--pretrain", SRC, "--members", "x"], "--members='x' is invalid"),
])
def test_bad_input_exits_2_with_one_line(saved, mlp_ckpt, args, match, capsys):
    _, res = saved
    args = [a.format(a=res.members[0], m=mlp_ckpt) for a in args]
    assert main(["ensemble", "--task", TGT, "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("transferlab ensemble: error:")
    import re
    assert re.search(match, err), err


def test_strategy_strings_parse_by_field_type():
    # the default shift is the best measured variant; the paper's settings are PAPER
    from transferlab.ensemble.shift import PAPER

    dflt, paper = get_strategy("shift"), get_strategy(PAPER)
    assert (dflt.alpha, dflt.head, dflt.scope) == ("auto", "probe", "norm")
    assert (paper.alpha, paper.head, paper.scope) == (1.0, "reference", "all")
    cfg = get_strategy("shift:alpha=0.5:tiny_epochs=2:head=fresh:ref_epochs=none")
    assert (cfg.alpha, cfg.tiny_epochs, cfg.head, cfg.ref_epochs) == (0.5, 2, "fresh", None)
    with pytest.raises(UserError, match="tiny_epochs=0 is invalid|head='fresh' is invalid"):
        get_strategy("shift:tiny_epochs=0:head=fresh")
    with pytest.raises(UserError, match="tiny_epochs=1 is invalid"):
        get_strategy("shift-only:tiny_epochs=1")


def test_shared_init_members_start_from_one_initialisation(tmp_path):
    """``shared_init``: members pretrained for 0 epochs (their initial weights) have equal
    encoders (the head is drawn by each member's seed when training replaces it); by
    default each member has its own initialisation."""
    from safetensors.torch import load_file

    from transferlab.ensemble.members import pretrain_members

    def weights(paths):
        return [load_file(p) for p in paths]

    task = "digits:classes=0-2:per_class=5:size=8"
    own = weights(pretrain_members(task, 2, tmp_path / "own", "mlp", {"epochs": 0}))
    shared = weights(pretrain_members(task, 2, tmp_path / "shared", "mlp", {"epochs": 0},
                                      shared_init=True))
    enc = [k for k in shared[0] if k.startswith("blocks.")]
    assert enc and shared[0].keys() == shared[1].keys()
    assert all(torch.equal(shared[0][k], shared[1][k]) for k in enc)
    assert not all(torch.equal(own[0][k], own[1][k]) for k in enc)
    assert all(torch.equal(own[0][k], shared[0][k]) for k in enc)  # seed 0's init


def test_alpha_auto_picks_on_validation_and_add_reuses_the_pick(saved, tmp_path):
    """alpha='auto' scores every candidate alpha on validation and keeps the best (ties:
    nearest 1), counts that time, and `ensemble add` shifts a new member by the alpha
    picked."""
    from transferlab.ensemble.shift import AUTO_ALPHAS

    out, res = saved
    spec = "shift-only:head=probe:alpha=auto"
    got = transfer_ensemble(TGT, members=res.members[:2], strategies=[spec], train=TRAIN,
                            seed=0, workers=1, out=str(tmp_path / "e"),
                            db=str(tmp_path / "db.sqlite"))
    extra = got.runs[spec].extra
    assert set(extra["alpha_val_acc"]) == set(AUTO_ALPHAS)
    assert extra["alpha"] == max(AUTO_ALPHAS, key=lambda a: (extra["alpha_val_acc"][a],
                                                             -abs(np.log(a))))
    assert extra["shift_overhead_s"] > 0
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["strategies"][spec]["alpha"] == extra["alpha"]
    added = add_member(tmp_path / "e", res.members[0], spec)  # a source again: any member
    assert added["after"]["members"] == 3
    with pytest.raises(UserError, match="alpha='nope' is invalid"):
        get_strategy("shift:alpha=nope")


def test_alpha_auto_first_member_is_the_member_a_fixed_alpha_builds(saved, tmp_path):
    """The member alpha='auto' builds while picking (and then uses) is bit for bit the one
    shift:alpha=<that alpha> builds directly."""
    out, res = saved
    auto = transfer_ensemble(TGT, members=res.members[:2], strategies=[
        "shift-only:head=probe:alpha=auto:pick=member"], train=TRAIN, seed=0, workers=1,
        db=str(tmp_path / "a.sqlite"))
    alpha = auto.runs["shift-only:head=probe:alpha=auto:pick=member"].extra["alpha"]
    fixed = f"shift-only:head=probe:alpha={alpha}"
    direct = transfer_ensemble(TGT, members=res.members[:2], strategies=[fixed],
                               train=TRAIN, seed=0, workers=1, db=str(tmp_path / "b.sqlite"))
    np.testing.assert_array_equal(auto.runs["shift-only:head=probe:alpha=auto:pick=member"].member_probs,
                                  direct.runs[fixed].member_probs)
    # the pick's score (the probe's own validation accuracy) is that member's validation
    # accuracy as its trial measures it (shift-only: the member evaluated as built)
    run = auto.runs["shift-only:head=probe:alpha=auto:pick=member"]
    assert run.trials[1].metrics["val_acc"] == pytest.approx(
        run.extra["alpha_val_acc"][alpha], abs=1e-6)


def test_alpha_auto_by_the_ensembles_validation_nll(saved, tmp_path):
    """pick='ensemble' (the default): each alpha's score is minus the validation NLL of the
    mean of the reference's and the shifted member's probabilities, and the member it builds
    is still the one a fixed alpha builds."""
    from transferlab.sweep.artifacts import predict_probs

    out, res = saved
    label = "shift-only:head=probe:alpha=auto"
    auto = transfer_ensemble(TGT, members=res.members[:2], strategies=[label], train=TRAIN,
                             seed=0, workers=1, db=str(tmp_path / "a.sqlite"))
    run = auto.runs[label]
    alpha, scores = run.extra["alpha"], run.extra["alpha_val_acc"]
    assert run.extra["alpha_pick"] == "ensemble"
    assert scores[alpha] == max(scores.values()) and all(v <= 0 for v in scores.values())
    fixed = f"shift-only:head=probe:alpha={alpha}"
    direct = transfer_ensemble(TGT, members=res.members[:2], strategies=[fixed],
                               train=TRAIN, seed=0, workers=1, db=str(tmp_path / "b.sqlite"))
    np.testing.assert_array_equal(run.member_probs, direct.runs[fixed].member_probs)
    # the score, recomputed from the two members' own trials
    from transferlab.data import make_task
    from transferlab.sweep import load_trial_model

    task = make_task(TGT)
    probs = [predict_probs(load_trial_model(auto.context.db, t.key)[0], task.x_val)
             for t in run.trials]
    mean = (probs[0] + probs[1]) / 2
    nll = -np.log(mean[np.arange(len(task.y_val)), task.y_val.numpy()].numpy()).mean()
    assert scores[alpha] == pytest.approx(-nll, abs=1e-5)


def test_later_shifted_members_fit_their_probe_at_the_first_ones_l2(saved, tmp_path):
    """head=probe: the first shifted member picks the probe's L2 on the grid; the members
    after it fit once at that L2 (no pick of their own); alpha='auto' and the alpha it
    picks still build the same members; the manifest keeps the L2 for `ensemble add`."""
    from transferlab.ensemble.members import probe_features, probe_head
    from transferlab.ensemble.shift import probe_data
    from transferlab.protocols.linear_probe import L2_GRID
    from transferlab.sweep.artifacts import predict_probs

    out, res = saved
    m0, meta = load_checkpoint(res.members[0])
    third = save_checkpoint(tmp_path / "third", m0, meta)  # a copy is a distinct member
    members = [*res.members[:2], str(third)]
    spec = "shift-only:head=probe:alpha=auto"
    auto = transfer_ensemble(TGT, members=members, strategies=[spec], train=TRAIN, seed=0,
                             workers=1, out=str(tmp_path / "e"), db=str(tmp_path / "a.sqlite"))
    run = auto.runs[spec]
    alpha, l2 = run.extra["alpha"], run.extra["probe_l2"]
    assert l2 in L2_GRID
    cfg, task = get_strategy(spec), make_task(TGT)
    sources = [load_checkpoint(p)[0] for p in members]
    first = cfg.shift_member(sources[1], run.extra["delta"], alpha, None, task, 0, 1,
                             TRAIN["batch_size"], fit_probe=False)
    assert probe_head(first, *probe_features(first, probe_data(task)))["l2"] == l2
    later = cfg.shift_member(sources[2], run.extra["delta"], alpha, None, task, 0, 2,
                             TRAIN["batch_size"], probe_l2=l2)
    np.testing.assert_allclose(predict_probs(later, task.x_test).cpu().numpy(),
                               run.trials[2].probs, atol=1e-5)
    fixed = f"shift-only:head=probe:alpha={alpha}"
    direct = transfer_ensemble(TGT, members=members, strategies=[fixed], train=TRAIN, seed=0,
                               workers=1, db=str(tmp_path / "b.sqlite"))
    assert direct.runs[fixed].extra["probe_l2"] == l2
    np.testing.assert_array_equal(run.member_probs, direct.runs[fixed].member_probs)
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["strategies"][spec]["probe_l2"] == l2
