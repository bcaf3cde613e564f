"""What travels to the GPU machine besides the code (`benchmarks/gpu_carry.sh` runs this and
downloads the wheels): the bundled MiniLM with its weights in fp16 (45 MB instead of 91) and
its small files. (The real sample travels with the code: tests/data.)

    .venv/bin/python benchmarks/gpucheck/carry.py --out .gpu_carry
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def write_minilm_fp16(source: Path, out: Path) -> Path:
    import torch

    from gpucheck.models import converted_copy

    return converted_copy(source, out, torch.float16)


def main(argv=None) -> int:
    from ray_job.encode.model.loading import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_minilm_fp16(Path(bundled_model_path()), args.out / "minilm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
