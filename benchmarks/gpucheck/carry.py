"""What travels to the GPU machine besides the code (`benchmarks/gpu_carry.sh` runs this and
downloads the wheels): the bundled MiniLM with its weights in fp16 (45 MB instead of 91) and
its small files, and the real sample, gzipped (the `../shared` beside a checkout does not
travel).

    .venv/bin/python benchmarks/gpucheck/carry.py --out .gpu_carry
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def write_minilm_fp16(source: Path, out: Path) -> Path:
    import torch

    from gpucheck.models import converted_copy

    return converted_copy(source, out, torch.float16)


def write_sample(sample: Path, out: Path) -> Path:
    target = out / "sample.jsonl.gz"
    with open(sample, "rb") as src, gzip.open(target, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    return target


def main(argv=None) -> int:
    from gpu_check import SAMPLE

    from ray_job.encode.models import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_minilm_fp16(Path(bundled_model_path()), args.out / "minilm")
    write_sample(SAMPLE, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
