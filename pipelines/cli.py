"""`fitatlas`: run the pipeline, list GPUs, size one config.

Subcommands import only what they need: `estimate` and `gpus` never import Dagster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from pipelines.settings import REPO_ROOT, configure_environment, load_settings

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
    settings = configure_environment()
    prepare_dagster_home()
    import dagster as dg

    from pipelines.definitions import defs

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("full_pipeline").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
        )
    print(f"run {result.run_id}: {'success' if result.success else 'FAILED'} (Dagster instance: {os.environ['DAGSTER_HOME']})")
    print_summary(settings.published_path)
    return 0 if result.success else 1


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
        for model_id in SUMMARY_MODELS:
            print(f"\ntop 3 recommendations for {model_id}:")
            rows = con.execute(
                """select rank, gpu_count, gpu_id, precision, context_length, decode_tok_s, itl_ms, ttft_ms,
                          cost_per_month_usd, cost_per_mtok_usd
                   from recommendations where model_id = ? order by rank limit 3""",
                [model_id],
            ).fetchall()
            if not rows:
                print("  (none)")
            for rank, count, gpu, precision, context, tok_s, itl, ttft, month, mtok in rows:
                month_text = f"${month:,.0f}/month" if month is not None else "no rental price"
                mtok_text = f"${mtok:,.2f}/M tok" if mtok is not None else "-"
                print(
                    f"  {rank}. {count} x {gpu} {precision} ctx {context:,}: {tok_s:,.0f} tok/s, "
                    f"ITL {itl:.1f} ms, TTFT {ttft:.0f} ms, {month_text}, {mtok_text}"
                )
    finally:
        con.close()


def _published_gpus() -> list[dict]:
    import duckdb

    path = load_settings().published_path
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
    if not path.exists():
        raise CliError(f"{what} {path}: no such file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CliError(f"{what} {path}: not valid JSON ({error.msg} at line {error.lineno})") from error
    if not isinstance(data, dict):
        raise CliError(f"{what} {path}: expected a JSON object")
    return data


def cmd_estimate(args: argparse.Namespace) -> int:
    from sizing.architecture import describe
    from sizing.estimate import estimate

    config_path = Path(args.config)
    config = _read_json(config_path, "config")
    quant_path = config_path.with_name("hf_quant_config.json")
    quant = _read_json(quant_path, "quant config") if quant_path.exists() else None
    model_id = args.model_id or config.get("_name_or_path") or config_path.parent.name.replace("__", "/", 1)
    spec = describe(config, model_id=model_id, quant_config=quant)
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
    }
    result = estimate(spec, gpu, **{k: v for k, v in options.items() if v is not None})
    print(json.dumps(result, default=str, indent=None if args.json else 2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fitatlas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline once through Dagster and publish")
    run.add_argument("--log-level", default="WARNING", help="Dagster console log level (the full log is in the instance)")
    run.set_defaults(func=cmd_run)
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
    est.add_argument("--json", action="store_true", help="one JSON object on one line")
    est.set_defaults(func=cmd_estimate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as error:
        print(f"fitatlas: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
