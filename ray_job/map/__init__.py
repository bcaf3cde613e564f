"""The 2-D map of a run's papers (`ray-embed map`, `--map`): UMAP fitted on a bounded sample,
every other row placed near its nearest sampled neighbours, cluster labels, a picture."""
