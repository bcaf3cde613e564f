"""Stage 5, finalize: shards (+ reused rows) -> one verified embeddings.h5 in key order,
then the optional Parquet / DuckDB exports and report.json."""
