"""After the job: nearest papers to a query (`search`) or to a paper (`similar`), through the
run's nearest-neighbour index in RUN/index/ (`index`, `ann`) when it is current, else an exact
scan of embeddings.h5."""
