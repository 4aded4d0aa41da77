"""`fitatlas review` and `fitatlas publish`: what reviewers type, and every refusal they can meet.

Batches here are real DuckDB batch files with the audited tables and the checks' `check_results` /
`failing_rows` tables, registered in a real review ledger; they are small and synthetic so each
rule is shown in isolation (the end-to-end pipeline path is tests/test_review_flow.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from review_keys import ReviewerKeys, reviewer_keys, set_cli_environment

from pipelines.batches import AUDITED_TABLES, batch_path, content_hash
from pipelines.cli import main as fitatlas
from pipelines.defs.quality.checks import AUDIT_DDL
from pipelines.gate import publish_if_allowed
from pipelines.review import ReviewError, approve
from pipelines.review_ledger import decisions_for, get_batch, record_check_outcome, register_batch
from pipelines.settings import DEFAULT_REVIEWERS, Settings

pytestmark = pytest.mark.integration

FAILED_EXPECTATION = "expect_column_values_to_be_between(memory_gb)"
FAILING_ROW = {"gpu_id": "nvidia-h100-sxm-80gb", "memory_gb": 8000.0}


def make_batch(settings: Settings, batch_id: str, *, failing: bool, rows: int = 3) -> str:
    """Freeze a small batch and record its checks; returns its content hash."""
    path = batch_path(settings, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        for table in AUDITED_TABLES:
            con.execute(f"create table {table} as select range as id, '{batch_id}' as label from range({rows})")
        for statement in AUDIT_DDL:
            con.execute(statement)
        now = datetime(2026, 11, 27, 12, 0)
        con.execute("insert into check_results values ('gpus', 'expect_column_values_to_not_be_null(gpu_id)', 'passed', 0, 'keys', null, ?, ?)", [rows, now])
        if failing:
            con.execute(
                "insert into check_results values ('gpus', ?, 'failed', 1, 'no GPU has more than 2 TB of memory', null, ?, ?)",
                [FAILED_EXPECTATION, rows, now],
            )
            con.execute("insert into failing_rows values ('gpus', ?, ?)", [FAILED_EXPECTATION, json.dumps(FAILING_ROW)])
        digest = content_hash(con)
    finally:
        con.close()
    register_batch(settings, batch_id=batch_id, run_id=batch_id, content_sha256=digest, path=path,
                   row_counts={t: rows for t in AUDITED_TABLES})
    failed_checks = [{"table": "gpus", "expectation": FAILED_EXPECTATION, "status": "failed", "unexpected_count": 1}] if failing else []
    record_check_outcome(settings, batch_id=batch_id, passed=1, failed=int(failing), errored=0,
                         failed_checks=failed_checks, complete=True)
    return digest


@pytest.fixture
def keys(tmp_path: Path) -> ReviewerKeys:
    """alice and bob with real SSH keys, listed in their own reviewers file."""
    return reviewer_keys(tmp_path, "alice", "bob")


@pytest.fixture
def settings(tmp_path: Path, keys: ReviewerKeys) -> Settings:
    return Settings.for_data_dir(tmp_path / "data", reviewers_path=keys.reviewers_path)


@pytest.fixture
def cli(settings: Settings, keys: ReviewerKeys, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """`fitatlas ARGV...` in-process -> (exit code, stdout, stderr). The CLI reads its settings from
    the environment (its interface): that names `settings`, and FITATLAS_REVIEW_KEY is alice's key."""
    set_cli_environment(monkeypatch, settings, key=keys["alice"])

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what earlier steps (e.g. a pipeline run's dbt) printed
        code = fitatlas(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_list_filters_by_status_and_prints_json(settings, cli):
    make_batch(settings, "held-1", failing=True)
    make_batch(settings, "passed-1", failing=False)
    code, out, _ = cli("review", "list", "--json")
    assert code == 0
    assert [(i["batch_id"], i["status"]) for i in json.loads(out)] == [("held-1", "held"), ("passed-1", "passed")]
    code, out, _ = cli("review", "list", "--status", "held")
    assert code == 0 and "held-1" in out and "passed-1" not in out
    code, _, err = cli("review", "list", "--status", "waiting")
    assert code == 2 and err.startswith("fitatlas: unknown status waiting")


def test_show_lists_failed_expectations_rows_query_and_why_not_publishable(settings, cli):
    digest = make_batch(settings, "held-1", failing=True)
    code, out, _ = cli("review", "show", "held-1", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["content_sha256"], report["content_unchanged"], report["status"]) == (digest, True, "held")
    assert report["checks"] == {"passed": 1, "failed": 1, "errored": 0}
    (item,) = report["failed_expectations"]
    assert (item["table"], item["expectation"], item["unexpected_count"], item["sample_rows"]) == ("gpus", FAILED_EXPECTATION, 1, [FAILING_ROW])
    with duckdb.connect(report["batch_file"], read_only=True) as con:
        assert [json.loads(r[0]) for r in con.execute(item["all_rows_sql"]).fetchall()] == [FAILING_ROW]
    assert report["publishable"] is False and "held" in report["publishable_reason"]

    code, out, _ = cli("review", "show", "held-1")
    assert code == 0
    assert "why: no GPU has more than 2 TB of memory" in out
    assert f"duckdb -readonly {report['batch_file']} \"{item['all_rows_sql']}\"" in out
    assert "publishable no" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("review", "show", "nope"), "unknown batch id 'nope'"),
        (("review", "approve", "nope", "--reviewer", "alice", "--reason", "ok"), "unknown batch id 'nope'"),
        (("review", "approve", "held-1", "--reviewer", "mallory", "--reason", "ok"), "'mallory' is not a reviewer"),
        (("review", "approve", "held-1", "--reason", "ok"), "no reviewer given"),
        (("review", "approve", "held-1", "--reviewer", "alice"), "a reason is required"),
        (("review", "reject", "held-1", "--reviewer", "alice", "--reason", "   "), "a reason is required"),
        (("review", "approve", "passed-1", "--reviewer", "alice", "--reason", "ok"), "batch passed-1 is passed, not held"),
    ],
)
def test_refusals_exit_2_and_record_nothing(settings, cli, argv, message):
    make_batch(settings, "held-1", failing=True)
    make_batch(settings, "passed-1", failing=False)
    code, _, err = cli(*argv)
    assert code == 2
    assert err.startswith("fitatlas: ") and message in err, err
    assert get_batch(settings, "held-1").status == "held"
    assert decisions_for(settings, "held-1") == []


def test_approval_records_reviewer_reason_hash_and_failed_checks(settings, cli, monkeypatch, keys):
    digest = make_batch(settings, "held-1", failing=True)
    monkeypatch.setenv("FITATLAS_REVIEWER", "bob")
    monkeypatch.setenv("FITATLAS_REVIEW_KEY", str(keys["bob"]))
    code, out, err = cli("review", "approve", "held-1", "--reason", "vendor confirmed 8 TB")
    assert code == 0, err
    (decision,) = decisions_for(settings, "held-1")
    assert (decision["decision"], decision["reviewer"], decision["reason"], decision["content_sha256"]) == (
        "approve", "bob", "vendor confirmed 8 TB", digest)
    assert decision["failed_checks"] == [{"table": "gpus", "expectation": FAILED_EXPECTATION, "status": "failed", "unexpected_count": 1}]
    assert get_batch(settings, "held-1").status == "approved"

    code, _, err = cli("review", "reject", "held-1", "--reviewer", "alice", "--reason", "changed my mind")
    assert code == 2 and "batch held-1 is approved, not held" in err


def test_decided_batches_cannot_be_decided_again(settings, cli, keys):
    make_batch(settings, "held-1", failing=True)
    assert cli("review", "reject", "held-1", "--reviewer", "alice", "--reason", "bad")[0] == 0
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "bob", "--key", str(keys["bob"]), "--reason", "ok")
    assert code == 2 and "is rejected, not held" in err
    make_batch(settings, "passed-2", failing=False)
    publish_if_allowed(settings, "passed-2")
    code, _, err = cli("review", "approve", "passed-2", "--reviewer", "bob", "--key", str(keys["bob"]), "--reason", "ok")
    assert code == 2 and "is published, not held" in err


def test_a_batch_changed_since_frozen_cannot_be_approved(settings, cli):
    make_batch(settings, "held-1", failing=True)
    with duckdb.connect(str(batch_path(settings, "held-1"))) as con:
        con.execute("update gpus set label = 'tampered' where id = 0")
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--reason", "ok")
    assert code == 2 and "changed since it was frozen" in err
    code, out, _ = cli("review", "show", "held-1", "--json")
    assert json.loads(out)["content_unchanged"] is False


def test_reviewers_file_is_required_and_overridable(settings, cli, keys, monkeypatch, tmp_path):
    make_batch(settings, "held-1", failing=True)
    missing = Settings.for_data_dir(settings.data_dir, reviewers_path=tmp_path / "missing.yaml")
    with pytest.raises(ReviewError, match="missing.yaml not found"):
        approve(missing, "held-1", reviewer="alice", reason="ok", key=keys["alice"])
    # The CLI's reviewers file is FITATLAS_REVIEWERS (its interface).
    monkeypatch.setenv("FITATLAS_REVIEWERS", str(tmp_path / "missing.yaml"))
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--reason", "ok")
    assert code == 2 and "missing.yaml not found" in err
    assert get_batch(settings, "held-1").status == "held" and decisions_for(settings, "held-1") == []


def test_repo_reviewers_file_is_in_the_signed_format(tmp_path):
    from pipelines.review import load_reviewers

    # The repo's reviewers.yaml is the default, in-process and for the CLI (no FITATLAS_REVIEWERS).
    assert Settings.for_data_dir(tmp_path).reviewers_path == DEFAULT_REVIEWERS
    assert Settings.from_environment({}).reviewers_path == DEFAULT_REVIEWERS
    reviewers = load_reviewers(DEFAULT_REVIEWERS)  # raises on an entry without a valid SSH public key
    assert all(r.name.strip() and r.fingerprint.startswith("SHA256:") for r in reviewers.values())


def test_publish_command_publishes_an_approved_batch_through_dagster(settings, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    make_batch(settings, "passed-1", failing=False)
    assert publish_if_allowed(settings, "passed-1").publication.batch_id == "passed-1"
    make_batch(settings, "held-2", failing=True, rows=5)
    code, _, err = cli("publish", "held-2")
    assert code == 2 and "held" in err
    assert cli("review", "approve", "held-2", "--reviewer", "alice", "--reason", "ok")[0] == 0

    code, out, err = cli("publish", "held-2")
    assert code == 0, err
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        rows = con.execute("select batch_id, approval_kind, approved_by from publications order by published_at").fetchall()
        assert con.execute("select count(*) from gpus").fetchone()[0] == 5
    assert rows == [("passed-1", "auto", "fitatlas:auto"), ("held-2", "reviewer", "alice")]
    assert "signature verified" in out
    code, _, err = cli("publish", "held-2")
    assert code == 2 and "already published" in err
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()
