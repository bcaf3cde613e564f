"""Stages 2 and 3, tokenize and encode: rows -> token ids (CPU tasks) -> embeddings (replicas).

`tokenize` runs as CPU map tasks; `encoder` is the actor (one model replica each) that sorts a
batch by length, cuts token-budget micro-batches (`batching`) and runs the model
(`model.loading`) on the device and in the precision chosen by `model.precision`;
`model.pool_resources` sizes the pool. `model/` describes and sizes the model.
"""
