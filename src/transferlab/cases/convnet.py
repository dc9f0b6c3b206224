"""Convnet cases: sources trained to convergence on one half of a dataset, targets the
other half (or, for CIFAR-10, animals -> vehicles), at k = 5, 20 and 100.

Unlike the toy sources of the guide study (a few epochs), each source here is trained for
``PRETRAIN_EPOCHS`` epochs on up to 1,000 examples per class, so its features are as good
as this architecture gets on its data: transfer is then a real choice, not a formality.
Split: ``hashed_split`` of the case name, fixed before any result was seen.
"""

from __future__ import annotations

from transferlab.cases.core import CaseConfig, hashed_split
from transferlab.cases.registry import register_cases

PRETRAIN_EPOCHS = 30
ARCH_KWARGS = (("width", 16), ("fc_width", 128))
# tag, source task, target task (without per_class); 16 px greys, 32 px for CIFAR-10
PAIRS = (
    ("mnist", "mnist:classes=0-4:per_class=1000:size=16", "mnist:classes=5-9:size=16"),
    ("kmnist", "kmnist:classes=0-4:size=16", "kmnist:classes=5-9:size=16"),
    ("cifar", "cifar10:half=A:split=dissimilar:per_class=1000:size=32",
     "cifar10:half=B:split=dissimilar:size=32"),
    ("digits", "digits:classes=0-4:size=16", "digits:classes=5-9:size=16"),
)
SIZES = (5, 20, 100)


def cases() -> list[CaseConfig]:
    out = []
    for tag, src, tgt in PAIRS:
        for k in SIZES:
            if tag == "digits" and k == 100:
                continue  # load_digits has about 180 examples per class: k = 100 is most of them
            name = f"convnet-{tag}-k{k}"
            out.append(CaseConfig(name=name, source_task=src, target=tgt, k=k,
                                  split=hashed_split(name), arch="convnet",
                                  arch_kwargs=ARCH_KWARGS, pretrain_epochs=PRETRAIN_EPOCHS,
                                  family=f"convnet-{tag}"))
    return out


register_cases("convnet", cases, "convnets trained to convergence on MNIST / KMNIST / digits "
                                 "0-4 and CIFAR-10 animals -> the other half, k = 5, 20, 100")
