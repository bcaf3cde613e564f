"""Is the run's vectors any good: what finalize measures of them on the way (health, label
agreement on a bounded sample, the verdict), read by `ray-embed report` and `compare`.

    labels.py    which input field labels a paper, and how its value becomes one label
"""
