"""ray_job: embed papers (title + abstract) with transformer models on Ray, publish the vectors."""

__version__ = "0.1.0"
