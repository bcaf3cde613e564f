"""`ray-embed plan`: what a run will cost before it is started.

    corpus      rows in the inputs (exact, estimated or counted, and which) and, over a sample of
                the first rows read and tokenized by the job's own code, tokens per doc and the
                data path's CPU-seconds per doc (measured here)
    rates       docs/s of one GPU for this model: from the GPU check's recorded results
                (measured, or projected from a measured MFU), else an estimate from the model's
                FLOPs at a stated MFU; on CPUs, a short measured run of the replica here
    projection  the plan itself: wall time, GPU-hours, cost, CPUs per GPU, and the defaults
"""
