"""What a run's vectors are worth: measured by finalize on the way (report.json's
`quality`), read by `ray-embed report` and `compare`.

    tap.py            finalize's RowWatcher: feeds every written row to the measures below
    health.py         norms, the exact mean pairwise cosine, texts cut by the max length
    identical.py      vectors identical for different texts (hash buckets on scratch)
    sample.py         which rows the sample holds (bounded; from the row count alone)
    sample_fields.py  the sampled rows' input fields, read again by key
    labels.py         which input field labels a paper, and how its value becomes a label
    neighbours.py     exact k-NN inside the sample; label agreement against random
    baseline.py       the model's mean cosine on random text (a Ray task, cached)
    verdict.py        the thresholds and the verdict line
    section.py        report.json's quality section
    sample_file.py    RUN/quality/sample.arrow
    format.py         the section in words (`ray-embed report`, the dataset card)
    compare.py        `ray-embed compare RUN_A RUN_B`
"""
