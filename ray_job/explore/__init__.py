"""`ray-embed explore RUN`: the run in Apple's Embedding Atlas (map, text search, nearest
neighbours, metadata filters), served on 127.0.0.1 from the run's own files."""
