"""ray-embed: run | bench | plan | status | search | similar | index | map | dedup | explore |
upload | finalize
(python -m ray_job is the same)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import build_config
from .errors import Stopped, UserError
from .redact import redact_text, redact_url
from .settings.flags import settings_from_args
from .settings.parsers import add_command_parsers, refuse_non_positive


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors (which quote the values given) redacted."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, redact_text(f"{self.prog}: error: {message}\n"))


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ray-embed", description=__doc__)
    add_command_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def cmd_plan(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .estimate.projection import format_plan, make_plan

    cfg = config_from_args(args)
    plan = make_plan(cfg, args.gpus, args.gpu_type, args.price_per_gpu_hour, args.cpus_per_gpu,
                     args.sample_docs, args.docs,
                     Path(args.gpu_results) if args.gpu_results else None)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .api import rejected_rows, run_job

    cfg = config_from_args(args)
    report = run_job(cfg)
    print_summary(report)
    if "upload" in report:
        print(f"uploaded {len(report['upload']['uploaded'])} file(s) to "
              f"{report['upload']['destination']}")
    if cfg.options.strict and report["rows_rejected"]:
        print(f"ray-embed: failed (--strict): {rejected_rows(report)}", file=sys.stderr)
        return 1
    return 0


def config_from_args(args: argparse.Namespace):
    """The job config of `args.command` (run, bench or plan): its YAML file and flags."""
    return build_config(args.config, settings_from_args(args, args.command))


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench, format_bench

    print(format_bench(bench(config_from_args(args), args.docs, args.corpus_size,
                             args.gpu_docs_per_s)))
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from .publish.upload import upload
    from .rundir.rundir import RunDir

    with RunDir.at(args.directory).held() as run_dir:     # no driver re-finalizes meanwhile
        result = upload(run_dir, args.destination)
    print(f"uploaded {len(result.uploaded)} file(s) to {redact_url(result.destination)}"
          + (f"; {len(result.unchanged)} unchanged" if result.unchanged else ""))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .search.search import search

    if args.query_prompt is not None and args.query_prompt_name is not None:
        raise UserError("--query-prompt and --query-prompt-name both say which prompt to use: "
                        "give one")
    print_hits(search(args.directory, [args.query], args.k, args.query_prompt,
                      args.query_prompt_name)[0], args.json)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from .search.similar import similar

    print_hits(similar(args.directory, args.paper_id, args.k), args.json)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .rundir.rundir import RunDir
    from .search.index import build_index, format_build

    if args.truncate_dim is not None and args.vectors == "float32":
        raise UserError("--truncate-dim goes with --vectors int8 or binary")
    run_dir = RunDir.at(args.directory)
    run_dir.load_job()                    # not a run directory: one line, nothing created
    with run_dir.held() as held:
        print(format_build(build_index(held, force=args.force, vectors=args.vectors,
                                       truncate_dim=args.truncate_dim)))
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from .finalize.exports import refresh_parquet
    from .map.build import build_map, format_build
    from .rundir.rundir import RunDir

    run_dir = RunDir.at(args.directory)
    run_dir.load_job()                    # not a run directory: one line, nothing created
    with run_dir.held() as held:
        if args.color != "label":
            from .map.colouring import check_ready

            check_ready(held, args.color)
        info = build_map(held, force=args.force, sample=args.sample)
        print(format_build(info))
        if info["rebuilt"] and refresh_parquet(held):
            print("the Parquet export now carries the map's columns (map_x, map_y, map_label)")
        if args.color != "label":
            from .map.colouring import colour_map, format_colouring

            print(format_colouring(args.color, colour_map(held, args.color)))
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from .dedup import build as dedup
    from .rundir.rundir import RunDir

    dedup.check_threshold(args.threshold)
    run_dir = RunDir.at(args.directory)
    run_dir.load_job()                    # not a run directory: one line, nothing created
    if not run_dir.load_report():
        raise UserError(f"{run_dir.url} is not finalized (no report.json): "
                        f"`ray-embed finalize` it first")
    with run_dir.held() as held:
        info = dedup.build_dedup(held, args.threshold, force=args.force)
        report = held.load_report()
        report["near_duplicates"] = dedup.summary(info, held)
        held.write_report(report)
        print(dedup.format_summary(info))
        for line in dedup.format_examples(held):
            print(line)
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from .explore.serve import explore

    explore(args.directory, port=args.port, open_browser=not args.no_browser)
    return 0


def print_hits(hits, as_json: bool) -> None:
    from .search.hits import format_hits, hits_json

    print(hits_json(hits) if as_json else format_hits(hits))


def cmd_status(args: argparse.Namespace) -> int:
    from .rundir.status import format_status, run_status

    print(format_status(run_status(args.directory, args.config)))
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from .finish import finalize_run
    from .rundir.rundir import RunDir

    run_dir = RunDir.at(args.directory)
    run_dir.load_job()                    # not a run directory: one line, nothing created
    with run_dir.held() as held:
        report = finalize_run(held)
        print_summary(report)
        if args.map and not report.get("map"):
            from .finalize.exports import refresh_parquet
            from .map.build import build_map, format_build

            print(format_build(build_map(held)))
            refresh_parquet(held)
        if args.index:
            from .search.index import build_index, format_build

            print(format_build(build_index(held)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .finalize.report import report_lines
    from .rundir.rundir import RunDir

    run_dir = RunDir.at(args.directory)
    run_dir.load_job()                    # not a run directory: one line
    report = run_dir.load_report()
    if not report:
        raise UserError(f"{run_dir.url} is not finished (no report.json yet): run or "
                        f"finalize it first")
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    from .quality.format import quality_lines

    print("\n".join(report_lines(report) + quality_lines(report.get("quality"),
                                                          report.get("near_duplicates"))))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .quality.compare import compare_lines, compare_runs

    result = compare_runs(args.run_a, args.run_b, args.show)
    print(json.dumps(result, indent=2) if args.json else "\n".join(compare_lines(result)))
    return 0


def print_summary(report: dict) -> None:
    rejected = report["rows_rejected"]
    line = (f"wrote {report['rows_embedded']:,} embeddings (dim {report['dim']}) to "
            f"{report['output']}")
    if rejected:
        line += f"; {rejected:,} rows rejected (see {report['output'].rsplit('/', 1)[0]}/rejects)"
    print(line)
    rate = report.get("docs_per_s")
    if rate:
        print(f"{rate:,.1f} docs/s, {report['tokens_per_s']:,.0f} tokens/s, padding efficiency "
              f"{report['padding_efficiency']:.3f} on {report['device']} ({report['precision']})")
    if report.get("quality"):
        print(report["quality"]["verdict"])


COMMANDS = {"run": cmd_run, "bench": cmd_bench, "plan": cmd_plan, "status": cmd_status,
            "search": cmd_search,
            "similar": cmd_similar, "index": cmd_index, "upload": cmd_upload,
            "finalize": cmd_finalize, "map": cmd_map, "explore": cmd_explore,
            "report": cmd_report, "compare": cmd_compare, "dedup": cmd_dedup}


# What the Hub client and transformers read when first imported: their chatter stays behind
# --verbose, set through their environment so that no command imports them just to quieten them
QUIET_LIBRARIES_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error",
                       "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_libraries(verbose: bool) -> None:
    """Hub retries and model-loading chatter stay behind --verbose: set for the libraries
    still to be imported (and the Ray workers, which inherit it), and on those already
    imported in this process."""
    if verbose:
        return
    for name, value in QUIET_LIBRARIES_ENV.items():
        os.environ.setdefault(name, value)
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils

        huggingface_hub.utils.logging.set_verbosity_error()
        huggingface_hub.utils.disable_progress_bars()
    if "transformers" in sys.modules:
        import transformers

        transformers.logging.set_verbosity_error()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)


def run_location(args: argparse.Namespace) -> str | None:
    """The run directory a command works on (where its failure log goes), if it has one."""
    if getattr(args, "directory", None):
        return args.directory
    if args.command == "run":
        try:
            return config_from_args(args).options.output
        except Exception:  # noqa: BLE001 - a bad config has no run directory
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Every way a command ends is one line on stderr and an exit code (outcome.py): a
    refusal, a failure (its traceback in a log file the line names), a stop by a signal."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)      # --help ends here, before the imports below
    from .outcome import report_failure
    from .session.signals import stop_on_signals

    try:
        with stop_on_signals():
            quiet_libraries(bool(getattr(args, "verbose", False)))
            refuse_non_positive(args, args.command)
            return COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt, Stopped) as exc:  # noqa: BLE001 - every ending: one line
        return report_failure(exc, run_location(args), argv)


if __name__ == "__main__":
    sys.exit(main())
