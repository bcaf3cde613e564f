"""After the job: nearest papers to a query, from a finished run's embeddings.h5."""
