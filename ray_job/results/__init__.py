"""A finished run, read from Python: its ids and vectors (lazily, from embeddings.h5), its
report, and the nearest papers to a query or to one of its papers (`open_run`)."""
