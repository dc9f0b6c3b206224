"""Few-shot study: a tiny end-to-end run on digits (files, cells, pairing, weights, resume,
report), statistics on synthetic tables with known answers, and bad input (exit 2, one line,
nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from test_study_helpers import check_in_chromium, needs_chromium
from transferlab.cli import main
from transferlab.studies import fewshot
from transferlab.studies.fewshot.cells import compute_cells, pairwise
from transferlab.studies.fewshot.config import FewshotConfig
from transferlab.studies.fewshot.design import design, sweep_specs
from transferlab.sweep import load_results

PROTOCOLS = ["linear-probe", "bn-only", "conv-only-frozen-stats", "bn-adapt"]
SHOTS = [1, 4]
EPISODES = 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("fewshot")
    res = fewshot.run(pretrain="digits", budget="tiny", shots=SHOTS, episodes=EPISODES,
                      protocols=PROTOCOLS, out=out, workers=1, progress=False)
    return out, res


def test_study_writes_every_file_and_cell(study):
    out, res = study
    for name in ("fewshot.sqlite", "fewshot.json", "accuracy.png", "weights.png",
                 "report.html"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "fewshot.json").read_text())
    for key in ("cells", "weight_change", "findings", "settings", "provenance"):
        assert key in saved
    assert [(c["protocol"], c["shots"]) for c in saved["cells"]] == \
        [(p, k) for p in PROTOCOLS for k in SHOTS]
    for c in saved["cells"]:
        assert c["n"] == EPISODES and len(c["values"]) == EPISODES
        assert c["ci_low"] <= c["mean"] <= c["ci_high"]
        assert c["mean"] == pytest.approx(np.mean(c["values"]))
        assert c["units"] == [[0, e] for e in range(EPISODES)]
    # The target is the held-out half (digits 5-9), the source pretrained on 0-4.
    s = saved["settings"]
    assert s["target_classes"] == ["5", "6", "7", "8", "9"]
    assert s["source"].startswith("digits:classes=0-4")
    assert s["trials"] == len(PROTOCOLS) * len(SHOTS) * EPISODES and s["trials_failed"] == 0


def test_cells_are_the_stored_trials_and_episodes_are_shared(study):
    out, res = study
    df = load_results(out / "fewshot.sqlite")
    for c in res["cells"]:
        rows = df[(df["protocol_spec"] == c["protocol"]) & (df["per_class"] == c["shots"])]
        assert sorted(rows["test_acc"]) == sorted(c["values"])
    # Every protocol trained on the same support set for each (k, episode).
    tasks = df.groupby(["per_class", "episode"])["task"].nunique()
    assert (tasks == 1).all() and len(tasks) == len(SHOTS) * EPISODES


def test_weight_change_rows_say_what_each_protocol_moved(study):
    _, res = study
    rows = pd.DataFrame(res["weight_change"])
    assert set(rows.columns) >= {"protocol", "shots", "block", "kind", "relative_change",
                                 "ci_low", "ci_high", "n", "cosine_between_episodes"}
    assert (rows["n"] == EPISODES).all()

    def moved(protocol, kinds, blocks=None):
        """Relative changes of ``kinds`` in the blocks (the head left out unless named)."""
        r = rows[(rows["protocol"] == protocol) & rows["kind"].isin(kinds)]
        r = r[r["block"].isin(blocks)] if blocks is not None else r[r["block"] != "head"]
        return r["relative_change"]

    convs = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    weights = ["conv weight", "linear weight"]
    stats = ["bn running_mean", "bn running_var"]
    # linear-probe: only the head; bn-adapt: the statistics and the head.
    assert (moved("linear-probe", weights + stats + ["bn gamma", "bn beta"]) == 0).all()
    assert (moved("bn-adapt", weights + ["bn gamma", "bn beta"]) == 0).all()
    assert (moved("bn-adapt", stats) > 0).all()
    # bn-only moves BN affine (and statistics), never a weight matrix.
    assert (moved("bn-only", weights, convs + ["fc6", "fc7"]) == 0).all()
    assert (moved("bn-only", ["bn beta"]) > 0).any()
    # frozen statistics stay exactly as pretrained.
    assert (moved("conv-only-frozen-stats", stats) == 0).all()
    # The new head is measured against its own initialisation (never the source's head,
    # which has other classes): every protocol moved it.
    head = rows[(rows["block"] == "head") & (rows["kind"] == "linear weight")]
    assert (head["relative_change"] > 0).all()
    found = {f["key"]: f for f in res["findings"]}
    from transferlab.studies.fewshot.weightchange import moved_summary

    probe = moved_summary(res["weight_change"], "linear-probe", max(SHOTS))
    assert {k for k, v in probe.items() if v["moved"]} == {"head linear weight", "head bias"}
    adapt = moved_summary(res["weight_change"], "bn-adapt", max(SHOTS))
    assert {k for k, v in adapt.items() if not v["moved"]} == \
        {"conv weight", "bn gamma", "bn beta", "linear weight", "bias"}
    # (kinds are listed largest change first: the head, fitted on standardised features,
    # can move more than the statistics)
    adapt_text = next(t for t in found["weights"]["text"].split(". ")
                      if t.startswith("bn-adapt moved"))
    assert "bn running_" in adapt_text.split("; left unchanged")[0]


def test_rerun_resumes_without_training_and_cli_reports(study, capsys):
    out, res = study
    before = load_results(out / "fewshot.sqlite").set_index("key")["finished_at"]
    rc = main(["study", "fewshot", "--budget", "tiny", "--shots", "1,4", "--episodes", "2",
               "--protocols", ",".join(PROTOCOLS), "--out", str(out), "--workers", "1",
               "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    after = load_results(out / "fewshot.sqlite").set_index("key")["finished_at"]
    assert after.equals(before)  # nothing was trained again
    assert summary["means"]["bn-only@4"] == next(c["mean"] for c in res["cells"]
                                                 if c["protocol"] == "bn-only"
                                                 and c["shots"] == 4)


@needs_chromium
def test_report_renders_in_headless_chromium(study):
    out, _ = study
    body = check_in_chromium((out / "report.html").resolve(), n_images=2)
    assert "BatchNorm tuning vs convolution tuning" in body and "Weight change" in body


def _table(means: dict[tuple[str, int], float], episodes: int, spread: float = 0.01):
    """A results table with known per-episode values: mean + spread * (e - centre)."""
    rows = []
    for (p, k), m in means.items():
        for e in range(episodes):
            rows.append({"protocol": p, "per_class": k, "episode": e, "seed": 0,
                         "test_acc": m + spread * (e - (episodes - 1) / 2), "status": "done"})
    return pd.DataFrame(rows)


def test_cells_have_the_t_interval_and_pairs_are_tested_per_episode():
    from scipy import stats

    df = _table({("a", 1): 0.5, ("a", 5): 0.7, ("b", 1): 0.5, ("b", 5): 0.6}, episodes=5)
    df.loc[(df["protocol"] == "b") & (df["per_class"] == 5) & (df["episode"] == 0),
           "status"] = "failed"
    cells = compute_cells(df, ["a", "b"], [1, 5])
    a5 = next(c for c in cells if c["protocol"] == "a" and c["shots"] == 5)
    vals = np.array(a5["values"])
    half = stats.t.ppf(0.975, 4) * vals.std(ddof=1) / np.sqrt(5)
    assert a5["mean"] == pytest.approx(0.7)
    assert (a5["ci_low"], a5["ci_high"]) == pytest.approx((0.7 - half, 0.7 + half))
    b5 = next(c for c in cells if c["protocol"] == "b" and c["shots"] == 5)
    assert b5["n"] == 4 and b5["n_failed"] == 1
    rows = pairwise(cells, ["a", "b"], [1, 5])
    r5 = next(r for r in rows if r["shots"] == 5)
    # Paired over the 4 shared episodes: a constant difference of 0.1, no spread: zero
    # variance is "not tested", never p = 0 and never significant.
    assert r5["n"] == 4 and r5["mean_diff"] == pytest.approx(0.1)
    assert r5["status"] == "not tested" and r5["p"] is None and not r5["higher"]
    r1 = next(r for r in rows if r["shots"] == 1)
    assert r1["mean_diff"] == pytest.approx(0.0) and not (r1["higher"] or r1["lower"])


def test_best_per_k_is_decided_by_tests_not_by_an_argmax_of_test_means():
    from transferlab.studies.fewshot.findings import best_per_k

    df = _table({("a", 5): 0.8, ("b", 5): 0.6, ("c", 5): 0.59}, episodes=6)
    wobble = np.array([0.0, 0.01, -0.01, 0.02, 0.0, -0.02])  # per-episode spread of b - c
    b = (df["protocol"] == "b").to_numpy()
    df.loc[b, "test_acc"] += wobble
    df.loc[(df["protocol"] == "a").to_numpy(), "test_acc"] += np.roll(wobble, 2)
    cells = compute_cells(df, ["a", "b", "c"], [5])
    found = best_per_k(cells, ["a", "b", "c"], [5], pairwise(cells, ["a", "b", "c"], [5]))
    assert "a (80.0%), significantly better than every other protocol" in found.text
    # b and c are 1 point apart with spread: neither beats the other, and c is named in the
    # config's order beside b, not dropped for having the lower test mean
    df2 = df[df["protocol"] != "a"]
    cells = compute_cells(df2, ["c", "b"], [5])
    found = best_per_k(cells, ["c", "b"], [5], pairwise(cells, ["c", "b"], [5]))
    assert "no protocol is significantly below c (59.0%), b (60.0%)" in found.text


def test_design_pretrains_on_the_other_half_and_specs_share_episodes():
    d = design(FewshotConfig(budget="tiny", shots=[1, 4], episodes=3))
    assert d.target == "digits:classes=5-9:val_fraction=0.0:size=8"
    specs = sweep_specs(d)
    assert sum(len(s["axes"]["protocol"]) for s in specs) == len(d.protocols)
    for s in specs:
        assert s["axes"]["per_class"] == [1, 4] and s["axes"]["episode"] == [0, 1, 2]
        assert s["sources"] == specs[0]["sources"] and s["keep"] == ["weights"]
    lr = {p: s["train"].get("lr_mult") for s in specs for p in s["axes"]["protocol"]}
    assert lr["finetune"] == lr["conv-only"] == 0.1 and lr["bn-only"] == 1.0
    other = design(FewshotConfig(budget="tiny", classes="0,1,2"))
    assert other.target.startswith("digits:classes=0-2") and "classes=3-9" in other.source


def test_gpu_budget_is_a_trustworthy_comparison_with_every_default_protocol():
    # the GPU comparison (EfficientNet-Lite0 -> CIFAR-10) is named: >= 10 episodes per k,
    # and the default protocols include each frozen-statistics variant beside its base
    from transferlab.studies.fewshot.budgets import PUBLIC, get_budget
    from transferlab.studies.fewshot.config import DEFAULT_PROTOCOLS

    b = get_budget("gpu")
    assert "gpu" in PUBLIC and b.episodes >= 10 and 1 in b.shots and max(b.shots) >= 10
    assert b.batch_size >= 10 * max(b.shots)  # full batch for 10 ways at the largest k
    for base in ("bn-only", "conv-only", "finetune"):
        assert base in DEFAULT_PROTOCOLS and f"{base}-frozen-stats" in DEFAULT_PROTOCOLS
    d = design(FewshotConfig(budget="gpu", shots=[1, 4]))
    assert len(d.episodes) == b.episodes and list(d.protocols) == list(DEFAULT_PROTOCOLS)


@pytest.mark.parametrize("args, match", [
    (["--shots", "1,500"], r"--shots='1,500' is invalid: allowed is k <= \d+, the training "
                           r"examples of the smallest target class"),
    (["--episodes", "0"], r"--episodes=0 is invalid: allowed is an integer >= 1"),
    (["--protocols", "bn-only,bn-magic"], r"--protocols: protocol='bn-magic' is invalid"),
    (["--classes", "3"], r"--classes='3' is invalid: allowed is a target with at least 2 "
                         r"classes"),
    (["--shots", "0,1"], r"--shots='0,1' is invalid: allowed is distinct integers >= 1"),
    (["--budget", "huge"], r"--budget='huge' is invalid"),
    (["--source", "nowhere.safetensors", "--target", "digits"], r"--source: checkpoint="),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, match):
    import re

    out = tmp_path / "out"
    rc = main(["study", "fewshot", "--budget", "tiny", "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(match, err), err
    assert not out.exists()


def test_initial_state_is_the_head_a_transfer_starts_from():
    from transferlab.analysis.weights import initial_state, mean_pairwise_cosine
    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.models import build_model

    torch.manual_seed(0)
    src = build_model("convnet", 5, in_channels=1, image_size=8, width=4, fc_width=8)
    task = make_task("digits:classes=5-9:per_class=2:size=8")
    res = transfer(src, task, "head-only", train={"epochs": 1, "lr": 1e-9}, seed=3,
                   progress=False)
    init = initial_state(src, "head-only", 5, seed=3)
    torch.testing.assert_close(res.model.head.weight, init["head.weight"], rtol=0, atol=1e-6)
    assert not torch.allclose(init["head.weight"],
                              initial_state(src, "head-only", 5, seed=4)["head.weight"])
    assert torch.equal(init["blocks.0.0.weight"], src.state_dict()["blocks.0.0.weight"])
    v = torch.tensor([1.0, 2.0, 0.0])
    assert mean_pairwise_cosine([v, 2 * v]) == pytest.approx(1.0)
    assert mean_pairwise_cosine([v, -v]) == pytest.approx(-1.0)
    assert mean_pairwise_cosine([v, torch.tensor([0.0, 0.0, 5.0])]) == pytest.approx(0.0)
    assert np.isnan(mean_pairwise_cosine([v, torch.zeros(3)]))  # nothing moved: no pair


@pytest.mark.parametrize("protocol", ["bn-only", "finetune-frozen-stats"])
def test_episode_engine_equals_the_per_episode_loop(protocol):
    """Two episodes at once (vmap over stacked parameters and BatchNorm buffers) give the
    weights, running statistics and test metrics of two separate ``transfer`` runs."""
    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.models import build_model
    from transferlab.studies.fewshot.engine import train_episodes

    torch.manual_seed(0)
    src = build_model("convnet", 5, in_channels=1, image_size=8, width=4, fc_width=16)
    src.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a pretrained source has
        for _ in range(3):
            src(torch.randn(32, 1, 8, 8))
    src.eval()
    tasks = [make_task(f"digits:classes=5-9:per_class=4:val_fraction=0:size=8:episode={e}")
             for e in range(2)]
    train = {"epochs": 5, "lr": 0.1, "device": "cpu", "channels_last": False}
    res = train_episodes(src, protocol, torch.stack([t.x_train for t in tasks]),
                         torch.stack([t.y_train for t in tasks]), tasks[0].x_test,
                         tasks[0].y_test, 5, train, seed=0)
    for e, task in enumerate(tasks):
        ref = transfer(src, task, protocol, train=train, seed=0, progress=False)
        for k, v in ref.model.state_dict().items():
            torch.testing.assert_close(res.states[e][k].to(v.dtype), v, rtol=1e-4, atol=1e-5)
        assert res.test_acc[e] == pytest.approx(ref.metrics["test_acc"], abs=1e-9)
        assert res.test_nll[e] == pytest.approx(ref.metrics["test_nll"], rel=1e-4)
    # The episodes differ (different support sets), so the check is not vacuous.
    assert not torch.equal(res.states[0]["head.weight"], res.states[1]["head.weight"])


def test_episode_engine_refuses_what_it_does_not_run():
    from transferlab.errors import UserError
    from transferlab.models import build_model
    from transferlab.studies.fewshot.engine import train_episodes

    src = build_model("convnet", 3, in_channels=1, image_size=8, width=4, fc_width=8)
    x, y = torch.randn(2, 6, 1, 8, 8), torch.randint(0, 3, (2, 6))
    with pytest.raises(UserError, match=r"protocol='linear-probe' has its own fit"):
        train_episodes(src, "linear-probe", x, y, x[0], y[0], 3)
    with pytest.raises(UserError, match=r"hflip=True is invalid for the fused engine"):
        train_episodes(src, "bn-only", x, y, x[0], y[0], 3, {"hflip": True})


def test_weight_change_skips_only_unkept_weights_and_says_so(monkeypatch):
    """A trial without kept weights is counted and said (a warning); a checkpoint that fails
    to load for another reason (a checksum mismatch) is an error, never skipped."""
    import transferlab.sweep as sweep
    from transferlab.errors import UserError
    from transferlab.studies.fewshot.weightchange import weight_change
    from transferlab.sweep.artifacts import NotKept

    df = pd.DataFrame([{"status": "done", "protocol": "finetune", "per_class": 5, "seed": 0,
                        "episode": e, "key": f"k{e}"} for e in range(2)])

    def not_kept(db, key):
        raise NotKept(f"trial {key} kept no weights")

    monkeypatch.setattr(sweep, "load_trial_model", not_kept)
    with pytest.warns(UserWarning, match="2 finished trial"):
        assert weight_change(df, "db", lambda: None, 2, ["finetune"], [5]) == []

    def corrupt(db, key):
        raise UserError("checkpoint weights do not match their sha256")

    monkeypatch.setattr(sweep, "load_trial_model", corrupt)
    with pytest.raises(UserError, match="sha256"):
        weight_change(df, "db", lambda: None, 2, ["finetune"], [5])
