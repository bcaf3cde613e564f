"""The run directory, the job's only state: job.json, shards/, rejects/, reuse/, report.json,
embeddings.h5. Reached only through `RunDir` (local disk or object storage).

Stage 4, the shard sink, writes here: each encoded block becomes one complete Arrow shard.
`status` and `progress` read it without changing it.
"""
