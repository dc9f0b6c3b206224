#!/usr/bin/env bash
# Prepares a GPU run from the project's root, on a machine with internet access (or a pip
# mirror): the GPU machine has torch, CUDA and most of the scientific stack, but no internet,
# no ../shared and no pydantic. This puts what it lacks into .gpu/ (ignored by git; send it
# along with the working tree):
#   .gpu/whl/        wheels the device lacks (cp312, manylinux): pydantic and its pieces, and
#                    pytest-xdist / execnet / pytest-timeout for check.sh's parallel test run
#   .gpu/datasets/   MNIST and the KMNIST test split from ../shared/datasets (14 MB)
# Then, on the GPU machine, from the project's root: bash benchmarks/gpu/check.sh (results
# in $OUT, summary.txt last; about 8 minutes). Add EXTRA_WHEELS="name==ver ..." for more.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
mkdir -p "$(git rev-parse --git-common-dir)/info"
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
rm -rf .gpu && mkdir -p .gpu/whl .gpu/datasets
pyd=$(grep -E '^pydantic==' constraints.txt | cut -d= -f3); pyd=${pyd:-2.14.3}
dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl "$@"; }
dl "pydantic==$pyd"
core=$(unzip -p .gpu/whl/pydantic-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core==\([0-9.]*\).*/\1/p')
dl "pydantic-core==$core" annotated-types typing-inspection "typing-extensions>=4.16" \
  pytest-xdist execnet pytest-timeout ${EXTRA_WHEELS:-}
for d in mnist kmnist; do [ -d ../shared/datasets/$d ] && cp -r ../shared/datasets/$d .gpu/datasets/; done
du -sh .gpu; echo 'next, on the GPU machine: bash benchmarks/gpu/check.sh'
