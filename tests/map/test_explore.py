"""`ray-embed explore`: Embedding Atlas over the run's own files, in a real headless Chromium
(Debian's, driven by playwright; no browser is ever downloaded): the page loads, draws the
points coloured by the papers' labels, shows the table's columns id, title, label first and
never the row-number column, and a title search finds its paper. On failure the page's
screenshot is kept in the test's tmp_path (pytest keeps the last runs' folders) and named in
the message."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason="no chromium here (apt-get install chromium; .ci/run "
                                       "installs it)")


class Served:
    """The explore app on 127.0.0.1 in a thread of this process, for the test's duration."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the explore server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def drawn_pixels(png: bytes) -> int:
    """Pixels of a screenshot that differ from its most common colour (the background)."""
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    return int((pixels != colours[counts.argmax()]).any(axis=1).sum())


def test_explore_shows_the_map_by_label_and_a_title_search_finds_its_paper(mapped_sample_run,
                                                                           sample_records,
                                                                           tmp_path):
    from playwright.sync_api import sync_playwright

    from ray_job.explore.serve import build_app
    from ray_job.explore.table import ROW_ID
    from ray_job.rundir.rundir import RunDir

    paper = sample_records[1]
    title = " ".join(paper["title"].split())
    with Served(build_app(RunDir.at(mapped_sample_run[0]))) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        shot = tmp_path / "explore.png"
        try:
            page.goto(url, wait_until="networkidle", timeout=60_000)
            page.get_by_text("1,000 / 1,000 points").wait_for(timeout=60_000)
            canvas = page.locator("canvas").first
            canvas.wait_for(timeout=30_000)
            time.sleep(1)                                          # the first frame drawn
            assert drawn_pixels(canvas.screenshot()) > 2_000, "no points drawn"
            colour_by = page.get_by_label("Color")
            assert colour_by.evaluate("s => s.options[s.selectedIndex].text") == \
                "label (VARCHAR)"
            legend = page.get_by_text("astro-ph", exact=True)        # a label's legend entry
            assert legend.count() >= 2, "no legend of the labels beside the label counts"
            columns = page.locator("table:has(th:has-text('map_x')) th").all_inner_texts()
            assert columns[:3] == ["id", "title", "label"], columns
            assert ROW_ID not in columns, columns
            page.get_by_placeholder("Search...").fill(title)
            page.keyboard.press("Enter")
            page.get_by_text("1 result.").wait_for(timeout=30_000)
            found = page.get_by_text(paper["id"], exact=True)
            found.first.wait_for(timeout=10_000)
        except Exception as exc:
            page.screenshot(path=str(shot))
            raise AssertionError(f"{exc} (the page is in {shot})") from exc
        finally:
            browser.close()


def test_explore_refuses_a_port_in_use(mapped_sample_run, ray_embed, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = ray_embed("explore", str(mapped_sample_run[0]), "--port", str(port),
                         "--no-browser", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"ray-embed: error: port {port} on 127.0.0.1 is taken: "
                                   f"pick another with --port")


def test_explore_reads_a_published_run_from_its_url(mapped_sample_run, s3, sample_records):
    """A run published to object storage is explored from there (cached copies of its
    files); its map is current there too, so nothing is built or written."""
    from ray_job.explore.table import explore_table
    from ray_job.publish.upload import upload
    from ray_job.rundir.rundir import RunDir

    url = f"s3://{s3.bucket}/runs/w47"
    upload(mapped_sample_run[0], url)
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    table = explore_table(RunDir.at(url))
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert after == before and "runs/w47/map/map.json" in before
    frame = table.frame
    assert len(frame) == 1000 and frame["id"].tolist() == [r["id"] for r in sample_records]
    assert frame["title"][1] == " ".join(sample_records[1]["title"].split())
    assert table.neighbours and len(frame["neighbors"][0]["ids"]) == 10
    assert {label["text"] for label in table.labels} >= {"math", "hep-ph", "astro-ph"}
    assert list(frame.columns) == ["id", "title", "label", "url", "map_x", "map_y",
                                   "neighbors", "__row_index__"]
    assert frame["label"][0] == "hep-ph"
