"""The peer: the Ray Data script a Ray user writes instead of ray-embed (read the JSON Lines,
embed with a sentence-transformers actor, write Parquet), for `throughput.py` to race.

    python benchmarks/peer_ray_data.py CORPUS.jsonl OUT_DIR [--threads N] [--field abstract]

`--threads N` sets the actor's torch threads (what a user who read the docs does); without it
the actor keeps Ray's default (one OpenMP thread an actor: Ray sets OMP_NUM_THREADS to the
CPUs it holds). One actor with one CPU, as ray-embed's single replica on a 2-CPU machine.
"""
from __future__ import annotations

import argparse
import time


def embed_with_ray_data(corpus: str, out: str, model: str, field: str = "abstract",
                        threads: int | None = None) -> float:
    """Seconds from reading to the last Parquet file written (Ray started here if it is not
    up: the command's own start counts, as ray-embed's does)."""
    import ray

    class Embed:          # defined here so that Ray ships it by value, as a script's would be
        def __init__(self):
            import torch
            from sentence_transformers import SentenceTransformer

            if threads:
                torch.set_num_threads(threads)
            self.model = SentenceTransformer(model, device="cpu")

        def __call__(self, batch):
            texts = [" ".join(str(t).split()) for t in batch[field]]
            return {"id": batch["id"], "embedding": list(self.model.encode(texts, batch_size=64))}

    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    ds = ray.data.read_json(corpus)
    ds = ds.map_batches(Embed, batch_size=256, concurrency=1, num_cpus=1, batch_format="numpy")
    ds.write_parquet(out)
    return time.perf_counter() - started


def main() -> None:
    from ray_job.encode.model.loading import bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--field", default="abstract")
    parser.add_argument("--model", default=None, help="default: the bundled MiniLM")
    args = parser.parse_args()
    seconds = embed_with_ray_data(args.corpus, args.out, args.model or bundled_model_path(),
                                  args.field, args.threads)
    print(f"{seconds:.2f}")


if __name__ == "__main__":
    main()
