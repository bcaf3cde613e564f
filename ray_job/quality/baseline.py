"""What the model gives on random text: the mean cosine between its vectors of PROBE_TEXTS
strings of PROBE_TOKENS tokens drawn at random (seeded) from its own vocabulary, special
tokens aside, decoded, with the run's prompt. A model whose vectors of unrelated gibberish
are already close (e5's are) is anisotropic by design, not collapsed: the corpus's mean
cosine is read against this one.

Embedded by a Ray task holding one replica's resources (`embed_probe`, the replica's own
encoder, precision and prompt), during the run, after the encode. Cached on the driver per
model, the settings that change its vectors and the probe's token ids (`cache_key`): it is a
property of the model, not of the corpus, the machine or the model's path."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..encode.tokenize import TokenizerRecipe, load_tokenizer, rust_tokenizer, texts_encoder
from .health import pairwise_mean_cosine
from .neighbours import unit_rows

PROBE_MIN_ROWS = 1000     # a smaller run is not worth a model load of its own (a cached
                          # number is still used)
PROBE_TEXTS = 64
PROBE_TOKENS = 32
SEED = 31
CACHE_VERSION = 1
# what of a replica's settings changes the vectors of given token ids (the model itself is
# its identity: weights digest or Hub commit; the tokenizer, prompt and max length are in
# the probe's token ids, which the key hashes)
VECTOR_SETTINGS = ("adapter", "backend", "pooling", "normalize", "truncate_dim", "side",
                   "precision", "trust_remote_code")


def probe_texts(recipe: TokenizerRecipe) -> list[str]:
    """PROBE_TEXTS random strings in the tokenizer's own vocabulary."""
    rng = np.random.default_rng(SEED)
    if recipe.rust is not None:
        backend = rust_tokenizer(recipe.rust, recipe.split_special_tokens)
        size, special = backend.get_vocab_size(), set(backend.get_added_tokens_decoder())
        decode = backend.decode
    else:
        tokenizer = load_tokenizer(recipe.source, recipe.trust_remote_code, recipe.revision)
        size, special = len(tokenizer), set(tokenizer.all_special_ids)
        decode = tokenizer.decode
    usable = np.setdiff1d(np.arange(size), np.fromiter(special, np.int64, len(special)))
    return [decode([int(i) for i in rng.choice(usable, PROBE_TOKENS)]) for _ in range(PROBE_TEXTS)]


def probe_ids(recipe: TokenizerRecipe):
    """The probe texts tokenized as the tokenize stage does (prompt, truncation)."""
    from ..encode.tokenize import token_array

    return token_array(texts_encoder(recipe)(probe_texts(recipe)))


def embed_probe(replica, ids) -> np.ndarray:
    """Run in a replica's place (a Ray task): the probe's vectors."""
    from ..encode.encoder import Encoder

    vectors, _ = Encoder(replica).embed_token_lists(ids)
    return np.asarray(vectors, np.float32)


def probe_cosine(vectors: np.ndarray) -> float | None:
    units = unit_rows(vectors)
    return pairwise_mean_cosine(units.sum(axis=0, dtype=np.float64), len(units))


def cache_key(replica, identity: dict, ids) -> str:
    """The model (identity), the settings that change its vectors, and the probe's token ids
    (`probe_ids`): the same model found at another path is the same key."""
    facts = {"version": CACHE_VERSION, "identity": identity,
             "settings": {name: getattr(replica, name) for name in VECTOR_SETTINGS}}
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode())
    for row in ids.to_pylist():
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()


class BaselineCache:
    """key -> random-text cosine, in this user's private folder (`storage.scratch`)."""

    def __init__(self, folder: Path | None = None):
        from ..storage.scratch import private_dir

        self.path = Path(folder or private_dir("quality")) / "random-text-cosines.json"

    def get(self, key: str) -> float | None:
        try:
            return json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError):
            return None

    def put(self, key: str, cosine: float) -> None:
        try:
            held = json.loads(self.path.read_text())
        except (OSError, ValueError):
            held = {}
        held[key] = cosine
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(held, indent=1, sort_keys=True))
        os.replace(temp, self.path)



def measure_baseline(ray, replica, identity: dict, recipe: TokenizerRecipe, num_cpus: float,
                     num_gpus: float, rows: int = PROBE_MIN_ROWS) -> float | None:
    """The cached cosine, or, for a run of at least PROBE_MIN_ROWS papers (`rows`), the
    probe embedded by a Ray task holding `num_cpus` / `num_gpus` (one replica's share) and
    cached. None when neither (the report says so), or (and one line) when the probe fails:
    the run's vectors are fine without it."""
    import sys

    ids = probe_ids(recipe)
    cache, key = BaselineCache(), cache_key(replica, identity, ids)
    found = cache.get(key)
    if found is not None or rows < PROBE_MIN_ROWS:
        return found
    try:
        task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus or 0)(embed_probe)
        cosine = probe_cosine(ray.get(task.remote(replica, ids)))
    except Exception as exc:  # noqa: BLE001 - the report then says it was not measured
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"ray-embed: the model's random-text cosine was not measured ({why})",
              file=sys.stderr)
        return None
    if cosine is not None:
        cache.put(key, cosine)
    return cosine
