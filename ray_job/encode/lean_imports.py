"""What a replica does not import: the scikit-learn and SciPy that transformers pulls in for
work a text encoder never does.

transformers imports scikit-learn (assisted generation's ROC curve) and SciPy (the
object-detection losses) whenever they are installed, and sentence-transformers installs both.
That is about 1 s of one core at every replica's start: 4.2 s -> 3.1 s for the bundled model
on a 2-core machine (`benchmarks/worker_startup.py`).
`skip_unused_extras()` tells transformers they are absent, before its model code is first
imported in the process. An encoder's forward pass never reads either flag: among text models
only FNet's TPU-only DFT path looks at SciPy, and it then uses torch's FFT, the same transform.

Called by the replica (`Encoder`) only: a process that also generates text keeps its extras.
"""
from __future__ import annotations

import sys

# transformers' own switches (`is_sklearn_available()` / `is_scipy_available()` read them)
UNUSED_EXTRAS = ("_sklearn_available", "_scipy_available")
FIRST_READER = "transformers.modeling_utils"   # imports generation and the losses


def skip_unused_extras() -> None:
    """Tell transformers, unless its model code is already imported (too late to matter); a
    transformers version without these switches is left as it is."""
    if FIRST_READER in sys.modules:
        return
    from transformers.utils import import_utils

    for flag in UNUSED_EXTRAS:
        if hasattr(import_utils, flag):
            setattr(import_utils, flag, False)
