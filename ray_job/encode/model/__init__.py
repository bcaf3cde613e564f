"""What a model is and what it needs, before and while a replica runs it.

    location        where a model is loaded from (bundled, a folder, a Hub name)
    checkpoint      its small files and the size of its weights, without reading a weight
    info, facts     what the job needs to know of it (`ModelInfo`), from its files alone
    identity        what it is beyond its name (`--previous` compares this)
    st_format       the sentence-transformers format, read without that library
    prompts         the prompts its authors put before a document and a query
    shape           its layers and widths, and the FLOPs of a forward pass (the one FLOP
                    model: `plan`, `bench` and the defaults all count with it)
    precision       the device and the numeric precision a replica computes in
    defaults        what follows from the model and the node: precision, token budget,
                    replicas per GPU, CPUs per GPU (pure)
    sizing          those defaults for one job: the model's size, the Ray cluster's node
    pool_resources  the encoder pool and task resources from what the cluster has (pure)
    loading         the model loaded for a replica (torch), through a registry of backends
    st_modules      the forward pass of a plain sentence-transformers model (torch)

Only `loading` and `st_modules` import torch. These modules import nothing of `encode` but
`gpus` (the datasheets) and `tokenize` (the tokenizer as sentence-transformers sets it up).
"""
