"""report.json: what a run did (counts, rates, what ran it)."""
from __future__ import annotations

from ..encode.batching import padding_efficiency
from .merge import FinalizeResult


def build_report(result: FinalizeResult, rejected: dict[str, int], embedded_now: int,
                 wall_s: float, encode_s: float, resumed: bool, device: str,
                 precision: str, replicas: int, param_bytes: int = 0) -> dict:
    rejected_total = sum(rejected.values())
    duplicates = rejected.get("duplicate_id", 0)
    return {
        "rows_read": result.count + rejected_total,
        "rows_embedded": result.count,
        "rows_rejected": rejected_total,
        "rejected_by_reason": rejected,
        "duplicates": duplicates,
        "resumed": resumed,
        "rows_embedded_this_run": embedded_now,
        "wall_s": round(wall_s, 3),
        "encode_wall_s": round(encode_s, 3),
        "docs_per_s": round(embedded_now / encode_s, 2) if encode_s > 0 else None,
        "tokens": result.real_tokens,
        "tokens_computed": result.computed_tokens,
        "tokens_per_s": (round(result.real_tokens * embedded_now / max(1, result.count)
                               / encode_s, 1) if encode_s > 0 else None),
        "padding_efficiency": round(padding_efficiency(result.real_tokens,
                                                       result.computed_tokens), 4),
        "device": device,
        "precision": precision,
        "replicas": replicas,
        "dim": result.dim,
        "param_bytes": param_bytes,
    }


def report_lines(report: dict) -> list[str]:
    """What `ray-embed report` says of a run before its quality: what was written, what was
    rejected, how fast, on what (a report.json missing some of it says less)."""
    dim = f" (dim {report['dim']})" if report.get("dim") else ""
    lines = [f"{report.get('rows_embedded', 0):,} embeddings{dim} in "
             f"{report.get('output', 'embeddings.h5')}"]
    if report.get("rows_rejected"):
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in
                            sorted((report.get("rejected_by_reason") or {}).items()))
        lines.append(f"{report['rows_rejected']:,} of {report.get('rows_read', 0):,} rows "
                     f"rejected ({reasons})")
    if report.get("docs_per_s"):
        lines.append(f"{report['docs_per_s']:,.1f} docs/s, {report['tokens_per_s']:,.0f} "
                     f"tokens/s on {report['device']} ({report['precision']}, "
                     f"{report['replicas']} replica(s)); wall {report['wall_s']:,.1f} s")
    return lines
