"""A small model zoo to rank: convnets pretrained on several sources, a random init, and
EfficientNet-Lite0 (ImageNet), all taking the same input (3 x 32 x 32) so that every
candidate can be scored and fine-tuned on the same target task.

    TRANSFERLAB_DATA=/work/shared/datasets python benchmarks/zoo.py [--out runs/zoo]

Checkpoints are cached: a member whose checkpoint exists with the same recipe is not
rebuilt. Pretraining is deliberately short (a few epochs on class subsets) so the zoo builds
on a shared 2-core CPU; the members are then of different quality as well as different
domain, which is what a ranking must see through.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SIZE, CHANNELS = 32, 3
COMMON = f"size={SIZE}:channels={CHANNELS}"

# name -> (source task, arch, train budget). epochs=0 keeps the seeded random init.
RECIPES: dict[str, dict] = {
    "mnist": {"task": f"mnist:per_class=1000:{COMMON}", "arch": "convnet", "epochs": 3},
    "kmnist": {"task": f"kmnist:per_class=700:{COMMON}", "arch": "convnet", "epochs": 3},
    "cifar_animals": {"task": f"cifar10:half=A:split=dissimilar:per_class=1000:{COMMON}",
                      "arch": "convnet", "epochs": 3},
    "cifar_vehicles": {"task": f"cifar10:half=B:split=dissimilar:per_class=1000:{COMMON}",
                       "arch": "convnet", "epochs": 3},
    "digits": {"task": f"digits:{COMMON}", "arch": "convnet", "epochs": 3},
    "random": {"task": f"digits:{COMMON}", "arch": "convnet", "epochs": 0},
    "efficientnet_lite0": {"task": None, "arch": "efficientnet_lite0", "epochs": 0},
}


def _recipe_matches(path: Path, recipe: dict) -> bool:
    sidecar = path.with_suffix(".json")
    if not (path.exists() and sidecar.exists()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("zoo_recipe") == recipe
    except json.JSONDecodeError:
        return False


def build_member(name: str, out: Path, data_dir: str | None = None, seed: int = 0) -> Path:
    """Build (or find cached) one zoo member; returns its ``.safetensors`` path."""
    from transferlab.api import checkpoint_meta, pretrain
    from transferlab.checkpoint import save_checkpoint
    from transferlab.data import make_task
    from transferlab.models import build_model
    from transferlab.provenance import provenance

    recipe = dict(RECIPES[name], seed=seed)
    path = out / f"{name}.safetensors"
    if _recipe_matches(path, recipe):
        return path
    t0 = time.perf_counter()
    if recipe["arch"] == "efficientnet_lite0":
        # ImageNet weights as shipped; the 1000-class head is kept (LEEP/NCE need it).
        model = build_model("efficientnet_lite0", 1000, CHANNELS, SIZE, pretrained=True)
        meta = {"task": "imagenet", "classes": [str(i) for i in range(1000)],
                "protocol": "pretrained", "seed": seed, "metrics": {}}
    else:
        task = make_task(recipe["task"], data_dir=data_dir)
        res = pretrain(task, arch="convnet", seed=seed, progress=False,
                       train={"epochs": recipe["epochs"], "batch_size": 128})
        model, meta = res.model, checkpoint_meta(res)
    meta.update(zoo_recipe=recipe, build_time_s=time.perf_counter() - t0,
                provenance=provenance())
    save_checkpoint(path, model, meta)
    return path


def build_zoo(out: str | Path = "runs/zoo", names: list[str] | None = None,
              data_dir: str | None = None, seed: int = 0, verbose: bool = True) -> dict[str, Path]:
    """Build every member in ``names`` (default: all of ``RECIPES``); name -> checkpoint."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names or list(RECIPES):
        if name not in RECIPES:
            raise SystemExit(f"zoo member {name!r} is unknown: allowed are {', '.join(RECIPES)}")
        t0 = time.perf_counter()
        paths[name] = build_member(name, out, data_dir=data_dir, seed=seed)
        if verbose:
            meta = json.loads(paths[name].with_suffix(".json").read_text())
            acc = meta.get("metrics", {}).get("test_acc")
            print(f"{name}: {paths[name]} ({time.perf_counter() - t0:.1f}s"
                  + (f", source test_acc={acc:.3f}" if acc is not None else "") + ")",
                  flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/zoo", help="folder of the zoo's checkpoints")
    ap.add_argument("--only", nargs="*", default=None, help=f"members: {', '.join(RECIPES)}")
    ap.add_argument("--data-dir", default=None, help="datasets folder (else $TRANSFERLAB_DATA)")
    args = ap.parse_args(argv)
    build_zoo(args.out, args.only, data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
