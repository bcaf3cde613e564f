"""Publish a finished run: `ray-embed upload DIR DEST`, `run --upload DEST [--upload-every N]`.

DEST picks its target by protocol: hf://datasets/OWNER/NAME[/path] goes to the Hugging Face
Hub (hub.py), anything else to fsspec (fsspec_target.py: s3://, gs://, file://, ...).
Both upload only what changed and never leave a partial file visible. A run directory held
by its driver (`RunDir.held`, fenced) publishes only while the lease is still that driver's:
the target checks it before each commit (a file moved into place, the Hub commit, the manifest).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..quality.format import quality_markdown
from ..rundir.layout import CARD, CARD_HEAD, REPORT
from ..rundir.polling import Poller
from ..rundir.rundir import RunDir
from .fsspec_target import FsspecTarget
from .hub import HubTarget, parse_hub_url
from .hub_data import card_sections, configs_yaml, ensure_parquet
from .transfer import UploadResult, no_check

TARGETS = {"hf": HubTarget}          # protocol -> target; every other protocol: fsspec


def open_target(destination: str, before_commit: Callable[[], None] | None = None):
    """The target of `destination`; `before_commit` (the run's fence check) is called before
    each commit there."""
    protocol = destination.split("://", 1)[0] if "://" in destination else ""
    if not protocol:
        raise UserError(f"upload destination {destination!r} needs a protocol: "
                        f"hf://datasets/OWNER/NAME, s3://bucket/path, file:///path, ...")
    return TARGETS.get(protocol, FsspecTarget)(destination, before_commit or no_check)


def files_to_publish(run_dir: RunDir, hub_prefix: str | None = None) -> dict[str, Path]:
    """name -> local file of everything to publish; the dataset card is made first.
    `hub_prefix`: the path in a Hub repo it goes to (None: not to the Hub)."""
    if not run_dir.results.has(REPORT):      # written last: the run is finished
        raise UserError(f"{run_dir.url} is not finished (no {REPORT} yet): run or finalize "
                        f"it first")
    if hub_prefix is not None:
        ensure_parquet(run_dir)
    with run_dir.results.writer(CARD) as card:
        card.write_text(dataset_card(run_dir, hub_prefix or ""))
    return run_dir.results.publishable()


def dataset_card(run_dir: RunDir, prefix: str = "") -> str:
    """The card of a finished run: the run's record says what the embeddings are, its report
    what finalize wrote (rows, dim, the precision that ran); `configs:` declares its Parquet
    files (under `prefix` in the repo) for the Hub's viewer and `datasets.load_dataset`."""
    facts = run_dir.load_job().facts()
    report = run_dir.load_report()
    return CARD_HEAD + f"""{configs_yaml(run_dir, prefix)}---
# Paper embeddings: {facts['model']}

| | |
|---|---|
| model | `{facts['model']}` |
| adapter | `{facts['adapter']}` |
| text template | `{facts['text template']}` |
| document prompt | {markdown_cell(facts['document prompt'])} |
| query prompt | {markdown_cell(facts['query prompt'])} |
| pooling | {facts['pooling']} |
| normalized | {facts['normalized']} |
| dim | {report['dim']} |
| count | {report['rows_embedded']} |
| precision | {report['precision']} |
| max tokens | {facts['max tokens']} |

Made with `ray-embed` (config hash `{facts['config hash']}`).

```python
import h5py
with h5py.File("embeddings.h5") as h5:
    ids = h5["ids"].asstr("utf-8")[:]   # (N,) paper ids
    emb = h5["embeddings"]              # (N, {report['dim']}), rows in the order of ids
```

{quality_markdown(report.get("quality"), report.get("near_duplicates"))}
{card_sections(run_dir, prefix)}"""


def markdown_cell(text: str) -> str:
    """`text` in one table cell: code, its line breaks and bars escaped."""
    return "`" + text.replace("\n", "\\n").replace("|", "\\|").replace("`", "'") + "`"


def upload(directory: RunDir | str | Path, destination: str) -> UploadResult:
    """Publish the finished run in `directory` (a fenced RunDir publishes only under its lease)."""
    run_dir = directory if isinstance(directory, RunDir) else RunDir.at(directory)
    target = open_target(destination, run_dir.check_fence)
    hub_prefix = parse_hub_url(destination)[1] if isinstance(target, HubTarget) else None
    return target.publish(files_to_publish(run_dir, hub_prefix))


class ShardPublisher(Poller):
    """`--upload-every N`: while the run goes on, publish each N new shard files to
    DEST/shards/, so a crash loses at most N shards of uploads. It learns of new shards from
    the run's tally, not by listing. Shard names come from their content, so a name already
    at the destination is the same shard."""

    def __init__(self, run_dir: RunDir, tally, destination: str, every: int,
                 interval: float = 2.0):
        self.run_dir, self.tally, self.every, self.interval = run_dir, tally, every, interval
        self.target = open_target(destination, run_dir.check_fence)
        self.sent = 0                     # shards of the tally already published

    def tick(self, final: bool = False) -> None:
        pending = self.tally.names_since(self.sent)
        if len(pending) < (1 if final else self.every):
            return
        with tempfile.TemporaryDirectory() as tmp:
            files = {f"shards/{name}": self.run_dir.shards.local_file(name, Path(tmp))
                     for name in pending}
            self.target.put_shards(files)
        self.sent += len(pending)
