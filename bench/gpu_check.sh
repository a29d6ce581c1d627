#!/usr/bin/env bash
# The GPU figures in one prepared command (bench/gpu_check.py: speed against a bare loop and
# Lightning alone, with and without torch.compile; time to accuracy with experiment=cifar10_fast
# through the real train and evaluate stages; determinism; GPU utilisation; the environment).
#
#   bash bench/gpu_check.sh --pack      # here: .gpu-check/ gets the wheels the device machine lacks
#                                       # (Python 3.12) and the CIFAR-10 JPEG copy from ../shared
#   bash bench/gpu_check.sh --dry-run   # here: what would travel, its size against the 64 MiB limit
#   bash bench/gpu_check.sh --cpu       # here: the same sections, small, on this CPU (the suite runs it)
#   bash bench/gpu_check.sh             # there (the device tool, carry .gpu-check): results in $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.gpu-check
LIMIT_MIB=64
# What the device machine's image lacks of what the stages import (its package list: the device
# tool's KINDS.md); their own needs come along, less what the image has.
WANTED=(mlflow-skinny==3.17.2 mlflow-tracing==3.17.2 SQLAlchemy==2.1.9 alembic==1.20.1 Mako==1.4.3)  # with their needs
ALONE=(omegaconf==2.3.1 hydra-core==1.3.8)  # their antlr4 4.9 is a source package: built here as a wheel
HAS="anyio certifi cffi charset-normalizer click cloudpickle h11 idna markupsafe packaging protobuf pyyaml requests typing-extensions urllib3 zipp annotated-doc jinja2 werkzeug"

travels() {  # the working tree the device tool sends (tracked and untracked-not-ignored), and .gpu-check
  { git ls-files -z --cached --others --exclude-standard; if [ -d "$PACK" ]; then find "$PACK" -type f -print0; fi; } |
    xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1
}

case "${1:-}" in
  --pack)
    rm -rf "$PACK" && mkdir -p "$PACK/wheels" "$PACK/data"
    py=(python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
        --platform any -d "$PACK/wheels")
    "${py[@]}" "${WANTED[@]}"
    "${py[@]}" --no-deps "${ALONE[@]}"
    python3 -m pip wheel --quiet --no-deps -w "$PACK/wheels" antlr4-python3-runtime==4.9.3  # pure Python, sdist only
    for name in $HAS; do rm -f "$PACK/wheels/$(echo "$name" | tr - _)"-[0-9]*.whl; done
    cp ../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz "$PACK/data/"
    grep -qx "/$PACK/" .git/info/exclude 2>/dev/null || echo "/$PACK/" >> .git/info/exclude
    echo "gpu-check: packed $(ls "$PACK/wheels" | wc -l) wheels and the CIFAR-10 JPEG copy in $PACK/"
    ;&
  --dry-run)
    bytes=$(travels)
    echo "gpu-check: would send $(git ls-files --cached --others --exclude-standard | wc -l) files of the tree and $PACK/ ($(find "$PACK" -type f 2>/dev/null | wc -l) files): $((bytes / 1048576)) MiB of $LIMIT_MIB"
    if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then echo "gpu-check: over the device tool's $LIMIT_MIB MiB" >&2; exit 1; fi
    ;;
  --cpu)
    python bench/gpu_check.py --cpu --out "${OUT:-bench/results/gpu-check-cpu}"
    ;;
  "")
    if [ -d "$PACK/wheels" ]; then  # the device machine: Python 3.12 with torch, without MLflow, Hydra, ...
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$PACK"/wheels/*.whl
      export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONUNBUFFERED=1
    timeout 480 python3 bench/gpu_check.py --cifar10 "$PACK/data/cifar10-jpeg.tar.gz" --out "${OUT:-bench/results}"
    ;;
  *) echo "usage: bash bench/gpu_check.sh [--pack | --dry-run | --cpu]" >&2; exit 2 ;;
esac
