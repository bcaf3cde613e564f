"""The GPU check's parts (`benchmarks/gpu_check.py` is the command).

    corpus    the real sample's texts, tokenized as the pipeline does
    models    the models measured: the bundled MiniLM (real weights, from the carry folder),
              BERT-base with a bottleneck adapter (SPECTER2's shape) and RoBERTa-large, both
              with random weights, each saved as a model folder the replica loads
    timing    run the replica's encoder for a time budget; docs/s, tokens/s, MFU
    record    the results file, rewritten after every measurement, and the closing table
    steps     one function per measurement
    graphs    CUDA graphs over shape-bucketed micro-batches (what the replica does not do yet)
    children  measurements in other processes: N replicas sharing one GPU, and the adapter
              model under the carried transformers 4 stack (`adapters` needs it)
"""
