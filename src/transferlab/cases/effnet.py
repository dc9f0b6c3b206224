"""EfficientNet-Lite0 (ImageNet) cases: a real pretrained network on three targets.

Source: the packaged ImageNet EfficientNet-Lite0 (9 blocks: stem, 7 stages, conv_head).
Targets: CIFAR-10 (natural images, near ImageNet), MNIST and KMNIST (grey strokes, far
from it), as 3-channel images, at k = 5, 20 and 100 labelled examples per class.

Tiers: ``quick`` at 32 px (what the 2-core CPU affords: a fine-tune of 100 steps takes
about 10 s), ``standard`` at 64 px (about 1/12 of 224 px's cost; for a GPU).
Split: ``hashed_split`` of the case name, fixed before any result was seen.
"""

from __future__ import annotations

from transferlab.cases.core import CaseConfig, hashed_split
from transferlab.cases.registry import register_cases

TARGETS = (("cifar10", "cifar10"), ("mnist", "mnist:channels=3"),
           ("kmnist", "kmnist:channels=3"))
SIZES = (5, 20, 100)
TIER_SIDE = {"quick": 32, "standard": 64}


def cases() -> list[CaseConfig]:
    out = []
    for tier, side in TIER_SIDE.items():
        for tag, target in TARGETS:
            for k in SIZES:
                name = f"effnet{side}-{tag}-k{k}"
                out.append(CaseConfig(
                    name=name, source_task=None, pretrained="efficientnet_lite0",
                    image_size=side, target=f"{target}:size={side}", k=k,
                    split=hashed_split(name), arch="efficientnet_lite0", tier=tier,
                    family=f"effnet-{tag}"))
    return out


register_cases("effnet", cases, "EfficientNet-Lite0 (ImageNet) -> CIFAR-10 / MNIST / KMNIST "
                                "at k = 5, 20, 100 (quick: 32 px, standard: 64 px)")
