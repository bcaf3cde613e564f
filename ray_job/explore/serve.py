"""Serving the explore table with Embedding Atlas's own server (FastAPI + its built web app),
on 127.0.0.1 only; queries run in DuckDB in this process (`duckdb_uri="server"`), so the
browser holds no copy of the table."""
from __future__ import annotations

import socket
import sys
import webbrowser
from pathlib import Path

from ..errors import UserError
from ..extras import check_extra
from ..rundir.rundir import RunDir
from .table import LABEL, ROW_ID, explore_table

HOST = "127.0.0.1"


def build_app(run_dir: RunDir):
    """The Embedding Atlas app (a FastAPI application) over the run's table."""
    check_extra("explore")
    from embedding_atlas.data_source import DataSource
    from embedding_atlas.options import make_embedding_atlas_props
    from embedding_atlas.server import make_server

    table = explore_table(run_dir)
    props = make_embedding_atlas_props(
        row_id=ROW_ID, x="map_x", y="map_y", text="title",
        neighbors="neighbors" if table.neighbours else None,
        labels=table.labels or None, initial_state=initial_state())
    source = DataSource(f"ray-embed-{table.fingerprint}", table.frame, {"props": props})
    return make_server(source, static_path=static_path(), duckdb_uri="wasm")


def initial_state() -> dict:
    """What the page opens with (Embedding Atlas's state: its charts): the map coloured by
    LABEL, the table without the row-number column (Embedding Atlas needs it as the rows' id;
    a user never reads it), a count of each label."""
    return {
        "charts": {
            "1": {"type": "embedding", "title": "Embedding",
                  "data": {"x": "map_x", "y": "map_y", "text": "title", "category": LABEL}},
            "2": {"type": "predicates", "title": "SQL Predicates"},
            "3": {"type": "instances", "title": "Instances",
                  "columnStyles": {ROW_ID: {"display": "hidden"}}},
            "4": {"type": "count-plot", "title": LABEL, "data": {"field": LABEL}},
        },
    }


def static_path() -> str:
    import embedding_atlas

    return str(Path(embedding_atlas.__file__).parent / "static")


def check_port(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            raise UserError(f"port {port} on {HOST} is taken: pick another with --port") from None


def explore(directory: str, port: int = 5055, open_browser: bool = True) -> None:
    """Serve the run until interrupted (Ctrl-C)."""
    import uvicorn

    check_port(port)
    app = build_app(RunDir.at(directory))
    url = f"http://{HOST}:{port}"
    print(f"Embedding Atlas on {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=HOST, port=port, log_level="error", access_log=False)
