"""What a model replica needs of a run (`ReplicaSpec`), as plain data made once on the driver
from the validated config (`JobRecord.replica`): the output spec's model settings, the side and
prompt it embeds, the batching options, the model to load and the device and precision asked of
every replica. A replica builds
no JobConfig and validates nothing again (for a DuckDB `--query` run it never sees the query)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import OutputSpec, RunOptions


@dataclass(frozen=True)
class ReplicaSpec:
    # the model settings of the output spec (what `load_model` reads)
    model: str | None
    adapter: str | None
    backend: str
    pooling: str | None
    normalize: bool | None
    max_seq_length: int | None
    trust_remote_code: bool
    truncate_dim: int | None
    # the side the replica embeds (document: the papers; query: `search`), and the prompt put
    # before its texts as the driver resolved it (its length matters to a Pooling that leaves
    # the prompt out); None: the model's own
    side: str
    prompt: str | None
    prompt_name: str | None
    # what to load, and on what
    source: str                   # the local folder or Hub name every replica loads
    revision: str | None          # the Hub commit every replica loads (None: a local folder)
    device: str                   # resolved on the driver, never "auto"; each replica then
    precision: str                # settles it for its node (precision.replica_choice)
    # batching
    max_batch_tokens: int | None  # None: chosen by the replica for its model and device
    max_batch_rows: int
    compile: bool

    @classmethod
    def of(cls, spec: OutputSpec, options: RunOptions, source: str, revision: str | None,
           device: str, precision: str, model=None) -> ReplicaSpec:
        """`model`: the run's ModelInfo, whose document prompt the replica's texts get (else
        the spec's setting)."""
        prompt, name = ((model.prompt, model.prompt_name) if model is not None
                        else (spec.prompt, spec.prompt_name))
        return cls(spec.model, spec.adapter, spec.backend, spec.pooling, spec.normalize,
                   spec.max_seq_length, spec.trust_remote_code, spec.truncate_dim, "document",
                   prompt, name, source, revision, device, precision, options.max_batch_tokens,
                   options.max_batch_rows, options.compile)
