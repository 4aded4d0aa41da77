"""`fitatlas`: run the pipeline, list GPUs, size one config, review and publish batches, benchmark.

Subcommands import only what they need: `estimate`, `gpus` and `review` never import Dagster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from pipelines.settings import REPO_ROOT, Settings, SettingsError

SUMMARY_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-405B-Instruct")


class CliError(Exception):
    """A user-facing error: printed as `fitatlas: <message>` with exit status 2."""


def prepare_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster"))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", instance_yaml)
    return home


def cmd_run(args: argparse.Namespace) -> int:
    """One full pass as the warehouse's one writer (`pipelines.warehouse.warehouse_lock`): the lock
    runs launched by the daemon take too, so a CLI run never overlaps a sensor's or another CLI's."""
    from pipelines.warehouse import warehouse_lock, warehouse_lock_path

    settings = Settings.from_environment()
    lock = warehouse_lock_path(settings.data_dir)

    def say_waiting(holder: str) -> None:
        print(
            f"fitatlas: the warehouse of {settings.data_dir} is being written by {holder or 'another run'}; "
            "waiting for it to finish",
            file=sys.stderr,
            flush=True,
        )

    try:
        with warehouse_lock(settings.data_dir, holder=f"fitatlas run (pid {os.getpid()})", wait=not args.no_wait, on_wait=say_waiting):
            return _run_pipeline(settings, args.log_level)
    except BlockingIOError as error:
        raise CliError(
            f"another run is writing the warehouse of {settings.data_dir} (lock {lock}); retry later or drop --no-wait"
        ) from error


def _run_pipeline(settings, log_level: str) -> int:
    """Land every source, then materialise only what is stale below them (`pipelines.rerun`)."""
    prepare_dagster_home()
    import dagster as dg

    from pipelines.definitions import FULL_PIPELINE, build_definitions
    from pipelines.rerun import run_stale
    from pipelines.settings import Cadence

    defs = build_definitions(settings, Cadence.from_environment())
    with dg.DagsterInstance.get() as instance:
        outcome = run_stale(
            defs, instance, settings, job=FULL_PIPELINE,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            say=lambda line: print(line, flush=True),
        )
    if outcome.downstream is not None:
        result = outcome.downstream
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'} (Dagster instance: {os.environ['DAGSTER_HOME']})")
        _print_gate_outcome(settings, result.run_id)
    elif outcome.plan is not None:
        _print_current_publication(settings)
    print_summary(settings.published_path)
    _print_site(settings)
    return 0 if outcome.success else 1


def _print_current_publication(settings) -> None:
    """After a run that published nothing because nothing was stale: what BI still sees."""
    from pipelines.publishing import read_publications

    history = read_publications(settings.published_path)
    if history:
        current = history[-1]
        print(
            f"unchanged: nothing new to publish; the current publication is {current['publication_id']} "
            f"(batch {current['batch_id']}, content sha256 {current['content_sha256']})"
        )


def _print_site(settings) -> None:
    from pipelines.publishing import site_index

    index = site_index(settings)
    if index.exists():
        print(f"\nmodel pages: {index.absolute().as_uri()}")


def _print_gate_outcome(settings, batch_id: str) -> None:
    """Say what the run's batch became: published, unchanged (nothing new to publish), or held."""
    from pipelines.publishing import read_publications
    from pipelines.review_ledger import get_batch

    batch = get_batch(settings, batch_id)
    if batch is None:
        return
    history = read_publications(settings.published_path)
    current = history[-1] if history else None
    if batch.status == "held":
        print(f"batch {batch_id} is held for review: `fitatlas review show {batch_id}`")
    elif batch.status == "published":
        print(f"batch {batch_id} published as {batch.publication_id} (content sha256 {batch.content_sha256})")
    elif current is not None and current["content_sha256"] == batch.content_sha256:
        print(
            f"unchanged: batch {batch_id} has exactly the content of the current publication "
            f"{current['publication_id']} (content sha256 {batch.content_sha256}); nothing new published"
        )
    else:
        print(f"batch {batch_id} is {batch.status}: `fitatlas review show {batch_id}`")


def print_summary(published_path: Path) -> None:
    import duckdb

    from pipelines.publishing import PUBLISHED_TABLES

    if not published_path.exists():
        print(f"nothing published yet at {published_path}")
        return
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        print(f"\npublished tables in {published_path}:")
        for table in PUBLISHED_TABLES:
            print(f"  {table:<16} {con.execute(f'select count(*) from {table}').fetchone()[0]:>9,} rows")
        stale = con.execute(
            "select source, kind, stale_since, last_error from source_freshness where stale order by source"
        ).fetchall()
        for source, kind, since, error in stale:
            when = f"{since:%Y-%m-%d %H:%M} UTC" if since else "an unknown time"
            print(f"  stale: {source} ({kind}) since {when}, its last landed data carried forward: {error}")
        for model_id in SUMMARY_MODELS:
            print(f"\ntop 3 recommendations for {model_id}:")
            rows = con.execute(
                """select rank, gpu_count, tensor_parallel, pipeline_parallel, gpu_id, precision, context_length,
                          decode_tok_s, speed_basis, speed_error_band, itl_ms, ttft_ms, cost_per_month_usd,
                          cost_per_mtok_usd, needs_other_checkpoint, checkpoint_model_id
                   from recommendations where model_id = ? order by rank limit 3""",
                [model_id],
            ).fetchall()
            if not rows:
                print("  (none)")
            for (rank, count, tp, pp, gpu, precision, context, tok_s, basis, band, itl, ttft, month, mtok,
                 other, other_repo) in rows:
                month_text = f"${month:,.0f}/month" if month is not None else "no rental price"
                mtok_text = f"${mtok:,.2f}/M tok" if mtok is not None else "-"
                layout = f"TP{tp}" + (f" x PP{pp}" if pp > 1 else "")
                weights = "" if not other else f"; needs {precision} weights ({other_repo or 'no tracked repo has them'})"
                print(
                    f"  {rank}. {count} x {gpu} ({layout}) {precision} ctx {context:,}: {tok_s:,.0f} tok/s "
                    f"({basis}, p90 error {band:.2f}x), ITL {itl:.1f} ms, TTFT {ttft:.0f} ms, {month_text}, "
                    f"{mtok_text}{weights}"
                )
    finally:
        con.close()


def _published_gpus() -> list[dict]:
    import duckdb

    path = Settings.from_environment().published_path
    if not path.exists():
        raise CliError(f"no published GPU table at {path}: run `fitatlas run` (or `make run`) first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        frame = con.sql("select * from gpus order by vendor, gpu_id").pl()
    finally:
        con.close()
    return frame.to_dicts()


def cmd_gpus(args: argparse.Namespace) -> int:
    gpus = _published_gpus()
    if args.json:
        print(json.dumps(gpus, default=str, indent=2))
    else:
        for g in gpus:
            print(f"{g['gpu_id']:<32} {g['vendor']:<8} {g['memory_gb']:>7.1f} GB  {g['name']}")
    return 0


def _read_json(path: Path, what: str) -> dict:
    """A config file under the landing caps (``sizing.validation.load_config_json``). Raises
    ``CliError`` for a missing, malformed or non-object file, ``ConfigRejected`` for one over a cap
    (too large, too deep): that config is untrusted input, answered as unsupported."""
    from sizing.constants import CONFIG_LIMITS
    from sizing.validation import ConfigRejected, load_config_json

    if not path.exists():
        raise CliError(f"{what} {path}: no such file")
    with path.open("rb") as handle:  # never more than one byte past the cap
        content = handle.read(CONFIG_LIMITS.max_config_bytes + 1)
    try:
        data = load_config_json(content, what=f"{what} {path}")
    except ConfigRejected as rejected:
        if rejected.kind == "malformed":
            raise CliError(f"{what} {path}: not valid JSON ({rejected.reason.split('malformed JSON: ')[-1]})") from None
        raise
    if not isinstance(data, dict):
        raise CliError(f"{what} {path}: expected a JSON object")
    return data


def cmd_estimate(args: argparse.Namespace) -> int:
    import dataclasses

    from sizing.constants import SIZING_BUDGET
    from sizing.estimate import estimate
    from sizing.isolation import SizingInput, describe_isolated
    from sizing.model_spec import ModelSpec
    from sizing.validation import ConfigRejected

    config_path = Path(args.config)
    quant_path = config_path.with_name("hf_quant_config.json")
    try:
        config = _read_json(config_path, "config")
        quant = _read_json(quant_path, "quant config") if quant_path.exists() else None
    except ConfigRejected as rejected:
        model_id = args.model_id or config_path.parent.name.replace("__", "/", 1)
        spec = ModelSpec(model_id=model_id, supported=False, reason=f"config rejected: {rejected.reason}")
    else:
        name = config.get("_name_or_path")
        model_id = args.model_id or (name if isinstance(name, str) else None) or config_path.parent.name.replace("__", "/", 1)
        # Sized as the pipeline sizes it: bounds first, then a worker process under the per-model
        # time and memory budget (sizing.isolation), so a hostile config cannot hang or exhaust this.
        item = SizingInput(model_id, json.dumps(config), json.dumps(quant) if quant is not None else None)
        specs, _ = describe_isolated([item], dataclasses.replace(SIZING_BUDGET, workers=1))
        spec = specs[0]
    gpu = None
    if args.gpu:
        by_id = {g["gpu_id"]: g for g in _published_gpus()}
        if args.gpu not in by_id:
            raise CliError(f"unknown GPU id {args.gpu!r}; `fitatlas gpus` lists the {len(by_id)} known ids")
        gpu = by_id[args.gpu]
    options = {
        "gpu_count": args.gpus,
        "precision": args.precision,
        "kv_dtype": args.kv_dtype,
        "context": args.context,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "itl_slo_ms": args.itl_slo_ms,
    }
    result = estimate(spec, gpu, **{k: v for k, v in options.items() if v is not None})
    print(json.dumps(result, default=str, indent=None if args.json else 2))
    return 0


def _reviewer(args: argparse.Namespace) -> str | None:
    return args.reviewer or os.environ.get("FITATLAS_REVIEWER")


def cmd_review_list(args: argparse.Namespace) -> int:
    from pipelines.review import list_items

    statuses = tuple(s for value in args.status or () for s in value.split(",") if s) or None
    items = list_items(Settings.from_environment(), statuses)
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no batches" + (f" with status {', '.join(statuses)}" if statuses else ""))
    for item in items:
        checks = f"{item['checks_passed'] or 0} passed, {item['checks_failed'] or 0} failed, {item['checks_errored'] or 0} errored"
        print(f"{item['batch_id']}  {item['status']:<10} {item['created_at']}  checks: {checks}")
    return 0


def cmd_review_show(args: argparse.Namespace) -> int:
    from pipelines.review import show

    report = show(Settings.from_environment(), args.batch_id)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    checks = report["checks"]
    print(f"batch      {report['batch_id']}  ({report['status']})")
    print(f"created    {report['created_at']}  run {report['run_id']}")
    print(f"file       {report['batch_file']}")
    print(f"content    sha256 {report['content_sha256']}" + ("" if report["content_unchanged"] else "  CHANGED SINCE FROZEN"))
    print("rows       " + ", ".join(f"{t} {n:,}" for t, n in report["row_counts"].items()))
    print(f"checks     {checks['passed'] or 0} passed, {checks['failed'] or 0} failed, {checks['errored'] or 0} errored")
    for item in report["failed_expectations"]:
        print(f"\n  {item['status'].upper()} {item['table']}: {item['expectation']}  ({item['unexpected_count']} unexpected)")
        print(f"    why: {item['why']}")
        if item["error"]:
            print(f"    error: {item['error']}")
        for row in item["sample_rows"]:
            print(f"    row: {json.dumps(row, default=str)}")
        print(f"    all rows: {item['all_rows_query']}")
    print("\ndecisions" + ("" if report["decisions"] else "  none"))
    for d in report["decisions"]:
        signature = "signature verified" if d["signature_valid"] else f"NOT VALID: {d['signature_problem']}"
        print(f"  {d['decided_at']}  {d['decision']} by {d['reviewer']}: {d['reason']}  (content {d['content_sha256'][:12]}; {signature})")
    verdict = "yes" if report["publishable"] else "no"
    print(f"\npublishable {verdict}: {report['publishable_reason']}")
    if report["decidable"]:
        print(f"decide     fitatlas review approve|reject {report['batch_id']} --reason TEXT [--reviewer NAME] [--key PATH]")
    return 0


def cmd_review_decide(args: argparse.Namespace) -> int:
    from pipelines import review

    decide = review.approve if args.review_command == "approve" else review.reject
    decision = decide(Settings.from_environment(), args.batch_id, reviewer=_reviewer(args), reason=args.reason, key=args.key)
    outcome = "approved: the approval sensor (or `fitatlas publish ID`) publishes it" if decision["decision"] == "approve" else "rejected: it will never be published"
    print(
        f"batch {args.batch_id} {outcome} (by {decision['reviewer']} at {decision['decided_at']}, "
        f"content {decision['content_sha256'][:12]}, signature verified)"
    )
    return 0


def cmd_review_allowed_signers(args: argparse.Namespace) -> int:
    """The OpenSSH allowed-signers file the gate verifies with, built from the reviewers file."""
    from pipelines.reviewers import allowed_signers, load_reviewers

    sys.stdout.write(allowed_signers(load_reviewers(Settings.from_environment().reviewers_path)))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pipelines.publishing import PublicationRefused

    settings = Settings.from_environment()
    if args.rollback == bool(args.batch_id):
        raise CliError("give either a BATCH_ID to publish or --rollback")
    try:
        if args.rollback:
            return _rollback(settings, args)
        return _publish_now(settings, args.batch_id)
    except PublicationRefused as error:
        raise CliError(str(error)) from error


def _rollback(settings, args: argparse.Namespace) -> int:
    from pipelines.review import rollback

    done = rollback(settings, reviewer=_reviewer(args), reason=args.reason, key=args.key)
    print(
        f"rolled back to publication {done['restored_publication_id']} (batch {done['batch_id']}), recorded as "
        f"{done['publication_id']} by {done['reviewer']} (signature verified)"
    )
    return 0


def _publish_now(settings, batch_id: str) -> int:
    """Run the `publish_batch` job in-process: the same gate and asset the approval sensor uses."""
    from pipelines.gate import decide
    from pipelines.review import require_batch

    require_batch(settings, batch_id)
    decision = decide(settings, batch_id)
    if not decision.allowed:
        raise CliError(f"not published: {decision.reason}")
    prepare_dagster_home()
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.defs.publish.assets import BATCH_TAG

    with dg.DagsterInstance.get() as instance:
        result = build_definitions(settings).resolve_job_def("publish_batch").execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={BATCH_TAG: batch_id},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise CliError(f"batch {batch_id} not published (run {result.run_id}): {'; '.join(failures) or 'run failed'}")
    from pipelines.review_ledger import get_batch

    batch = get_batch(settings, batch_id)
    if batch.status != "published":
        print(f"batch {batch_id} not published: its content is what BI already sees (run {result.run_id})")
        return 0
    print(f"published batch {batch_id} as {batch.publication_id} ({decision.reason}); run {result.run_id}")
    return 0


def _add_review_parser(sub) -> None:
    review = sub.add_parser("review", help="the review queue: list, show, approve or reject batches")
    review_sub = review.add_subparsers(dest="review_command", required=True)
    listing = review_sub.add_parser("list", help="batches and their status (held batches await review)")
    listing.add_argument("--status", action="append", help="only these statuses (repeatable or comma-separated): held, approved, ...")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_review_list)
    show = review_sub.add_parser("show", help="one batch: checks, failing rows, decisions, whether it can publish")
    show.add_argument("batch_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_review_show)
    signers = review_sub.add_parser(
        "allowed-signers", help="print the allowed-signers file (for ssh-keygen -Y verify) built from reviewers.yaml"
    )
    signers.set_defaults(func=cmd_review_allowed_signers)
    for verb in ("approve", "reject"):
        decide = review_sub.add_parser(verb, help=f"{verb} a held batch (reviewers in reviewers.yaml only)")
        decide.add_argument("batch_id")
        decide.add_argument("--reason", help="why (required)")
        decide.add_argument("--reviewer", help="your name in reviewers.yaml (default: $FITATLAS_REVIEWER)")
        decide.add_argument("--key", default=os.environ.get("FITATLAS_REVIEW_KEY"),
            help="your SSH private key, whose public key reviewers.yaml lists for you (default: $FITATLAS_REVIEW_KEY)")
        decide.set_defaults(func=cmd_review_decide)


def cmd_bench(args: argparse.Namespace) -> int:
    from pipelines.bench import BenchError, run_bench
    from pipelines.peer_bench import PeerMissing

    settings = Settings.from_environment()
    try:
        report = run_bench(settings.published_path, settings.snapshot_dir / "hf", args.models,
                           chunk_size=args.chunk, workers=args.workers, out_dir=args.out, peer_sample=args.peer_sample,
                           dask_shards=args.dask_shards, dask_address=settings.dask_address)
    except (BenchError, PeerMissing) as error:
        raise CliError(str(error)) from None
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:<22} {value:,}" if isinstance(value, int) else f"{key:<22} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fitatlas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline once through Dagster and publish")
    run.add_argument("--log-level", default="WARNING", help="Dagster console log level (the full log is in the instance)")
    run.add_argument("--no-wait", action="store_true", help="fail at once if another run holds the data dir instead of waiting")
    run.set_defaults(func=cmd_run)
    _add_review_parser(sub)
    publish = sub.add_parser("publish", help="publish an approved or passed batch now, or roll back to the previous publication")
    publish.add_argument("batch_id", nargs="?")
    publish.add_argument("--rollback", action="store_true", help="restore the publication before the current one")
    publish.add_argument("--reviewer", help="who asks for the rollback (reviewers.yaml; default: $FITATLAS_REVIEWER)")
    publish.add_argument("--reason", help="why roll back (required with --rollback; signed)")
    publish.add_argument("--key", default=os.environ.get("FITATLAS_REVIEW_KEY"),
        help="SSH private key signing the rollback (default: $FITATLAS_REVIEW_KEY)")
    publish.set_defaults(func=cmd_publish)
    gpus = sub.add_parser("gpus", help="list the published GPUs")
    gpus.add_argument("--json", action="store_true")
    gpus.set_defaults(func=cmd_gpus)
    est = sub.add_parser("estimate", help="size one config.json (optionally on a GPU)")
    est.add_argument("--config", required=True, help="path to a Hugging Face config.json")
    est.add_argument("--model-id", help="repo id to report (default: from the config or its directory)")
    est.add_argument("--gpu", help="gpu_id from `fitatlas gpus`")
    est.add_argument("--gpus", type=int, default=None, help="GPU count (tensor parallel)")
    est.add_argument("--precision", choices=["bf16", "fp8", "int8", "int4", "fp4"])
    est.add_argument("--kv-dtype", choices=["bf16", "fp8"])
    est.add_argument("--context", type=int)
    est.add_argument("--input-len", type=int)
    est.add_argument("--output-len", type=int)
    est.add_argument(
        "--itl-slo-ms",
        type=float,
        help="inter-token latency SLO for decode_tok_s (default: sizing.constants WORKLOAD.itl_slo_ms); "
        "max_throughput_tok_s is always the best batch with no SLO",
    )
    est.add_argument("--json", action="store_true", help="one JSON object on one line")
    est.set_defaults(func=cmd_estimate)
    bench = sub.add_parser("bench", help="size a synthetic catalogue of N distinct models against the published GPUs, timed")
    bench.add_argument("--models", type=int, required=True, help="catalogue size N (all distinct architectures)")
    bench.add_argument("--chunk", type=int, help="signatures sized per chunk (default: sizing.catalogue.DEFAULT_CHUNK)")
    bench.add_argument("--workers", type=int, help="processes describing configs (default: the CPUs available)")
    bench.add_argument("--out", type=Path, help="write each chunk's rows as Parquet under this directory")
    bench.add_argument("--peer-sample", type=int, default=0,
        help="also time llm-analysis on this many of the same cells (needs `make bench`'s llm-analysis install)")
    bench.add_argument("--dask-shards", type=int, default=0,
        help="size the grid in this many shards on Dask (FITATLAS_DASK_ADDRESS, else a local cluster of --workers processes)")
    bench.add_argument("--json", action="store_true", help="one JSON object on one line")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipelines.review import ReviewError

    try:
        return args.func(args)
    except (CliError, ReviewError, SettingsError) as error:
        print(f"fitatlas: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
