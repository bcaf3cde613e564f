"""The run directory, the job's only state: job.json, shards/, rejects/, reuse/, report.json,
embeddings.h5. Reached only through `RunDir` (local disk or object storage, through storage/).

`job` is the run's typed record (JobRecord: written once, before any shard; `replica` its
slice for the model replicas). Stage 4, the shard sink (`sink`), writes here: each encoded
block becomes one complete Arrow shard (`shards`: the format). `status` and `progress` read it
without changing it; `lease` keeps it to one driver; `polling` is the one background-thread
helper.
"""
