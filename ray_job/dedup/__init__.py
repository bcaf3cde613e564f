"""`ray-embed dedup RUN`: near-duplicate papers of a finished run (RUN/dedup/). build.py runs
it; clusters.py gives the clusters (the index's inverted lists, or the run's own k-means
clusters spilled to bucket files), links.py finds each row's most similar earlier row inside
its cluster, rescore.py checks every candidate exactly against embeddings.h5, components.py
joins the links into components, output.py writes pairs.parquet (with ids and titles)."""
