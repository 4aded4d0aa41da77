"""Signed approvals: a reviewer's name proves nothing, their SSH signature does.

Real keys (`ssh-keygen -t ed25519` in temporary directories), the real `ssh-keygen -Y sign` /
`-Y verify`, the real review ledger (forgeries are written into it with SQL, as anyone with shell
access could), the CLI's `main`, the gate, and `approval_sensor` evaluated with
`build_sensor_context`. Batches are small synthetic DuckDB batch files (tests/test_review_cli.py's
`make_batch`); the end-to-end pipeline path is tests/test_review_flow.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from pipeline_runs import definitions_for
from review_keys import ReviewerKeys, make_key, public_key, reviewer_keys, set_cli_environment, write_reviewers
from test_review_cli import make_batch

from pipelines.cli import main as fitatlas
from pipelines.defs.publish.assets import BATCH_TAG
from pipelines.gate import decide, publish_if_allowed
from pipelines.publishing import PublicationRefused, read_publications
from pipelines.review import ReviewError, approve, reject
from pipelines.review_ledger import decisions_for, get_batch, ledger_path
from pipelines.reviewers import canonical_message, check_recorded, load_reviewers, sign
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path: Path) -> ReviewerKeys:
    """alice and bob listed with their own keys in their own reviewers file."""
    return reviewer_keys(tmp_path, "alice", "bob")


@pytest.fixture
def settings(tmp_path: Path, keys: ReviewerKeys) -> Settings:
    settings = Settings.for_data_dir(tmp_path / "data", reviewers_path=keys.reviewers_path)
    make_batch(settings, "current", failing=False)
    publish_if_allowed(settings, "current")  # BI sees `current`; held batches come after it
    return settings


@pytest.fixture
def cli(settings: Settings, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`fitatlas ARGV...` in-process -> (exit code, stdout, stderr). The CLI reads its settings from
    the environment (its interface): that names `settings`, a DAGSTER_HOME of the test's own (for
    `publish`), and no FITATLAS_REVIEW_KEY (each test chooses its key)."""
    set_cli_environment(monkeypatch, settings, key=None)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = fitatlas(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def ledger_sql(settings: Settings, sql: str, params: tuple = ()) -> None:
    """Write the review ledger directly, as a forger with shell access would."""
    con = sqlite3.connect(ledger_path(settings))
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def evaluate_sensor(settings: Settings, instance: dg.DagsterInstance) -> dg.SensorResult:
    """One tick of the code location's approval sensor, with the `fitatlas` resource it builds for `settings`."""
    defs = definitions_for(settings)
    sensor = defs.resolve_sensor_def("approval_sensor")
    return sensor(dg.build_sensor_context(instance=instance, resources={"fitatlas": defs.resources["fitatlas"]}))


def publications(settings: Settings) -> list[str]:
    return [row["batch_id"] for row in read_publications(settings.published_path)]


# --- approvals by name only, by an unlisted key, by a listed key -------------------------------


def test_approval_by_name_only_is_refused(settings, cli):
    make_batch(settings, "held-1", failing=True)
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--reason", "trust me")
    assert code == 2
    assert "no signing key" in err and "--key" in err and "FITATLAS_REVIEW_KEY" in err
    # In-process, the key is an argument: no key, no decision.
    with pytest.raises(ReviewError, match="no signing key"):
        approve(settings, "held-1", reviewer="alice", reason="trust me")
    assert decisions_for(settings, "held-1") == [] and get_batch(settings, "held-1").status == "held"


def test_approval_by_a_key_not_listed_for_that_name_is_refused(settings, cli, keys, tmp_path):
    make_batch(settings, "held-1", failing=True)
    mallory = make_key(tmp_path / "mallory", "mallory")
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--key", str(mallory), "--reason", "ok")
    assert code == 2
    assert "approve by alice refused" in err and "does not list for alice" in err, err
    # bob's key is listed, but for bob: it does not make alice's signature.
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--key", str(keys["bob"]), "--reason", "ok")
    assert code == 2 and "signed with bob's key, not alice's" in err, err
    # A name the file does not list is refused before anything is signed.
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "mallory", "--key", str(mallory), "--reason", "ok")
    assert code == 2 and "'mallory' is not a reviewer" in err
    assert decisions_for(settings, "held-1") == [] and get_batch(settings, "held-1").status == "held"
    assert publications(settings) == ["current"]


def test_approval_by_the_listed_key_is_recorded_verified_and_publishes(settings, cli, keys, monkeypatch):
    digest = make_batch(settings, "held-1", failing=True, rows=5)
    monkeypatch.setenv("FITATLAS_REVIEW_KEY", str(keys["alice"]))
    code, out, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--reason", "vendor confirmed 8 TB")
    assert code == 0, err
    assert "signature verified" in out

    (decision,) = decisions_for(settings, "held-1")
    signed = json.loads(decision["signed_message"])
    assert signed == {
        "format": "fitatlas-review-decision/1", "kind": "batch_decision", "batch_id": "held-1",
        "content_sha256": digest, "decision": "approve", "reason": "vendor confirmed 8 TB",
        "decided_at": decision["decided_at"], "reviewer": "alice",
    }
    assert decision["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    gate = decide(settings, "held-1")
    assert gate.allowed and gate.approved_by == "alice" and "signature verified" in gate.reason

    code, out, err = cli("publish", "held-1")
    assert code == 0, err
    latest = read_publications(settings.published_path)[-1]
    assert (latest["batch_id"], latest["approval_kind"], latest["approved_by"]) == ("held-1", "reviewer", "alice")

    # FITATLAS_REVIEW_KEY is the CLI's --key default only: the library never signs with it.
    make_batch(settings, "held-2", failing=True, rows=4)
    with pytest.raises(ReviewError, match="no signing key"):
        reject(settings, "held-2", reviewer="alice", reason="wrong")
    assert decisions_for(settings, "held-2") == []


def test_rejection_is_signed_too(settings, cli, keys):
    make_batch(settings, "held-1", failing=True)
    code, _, err = cli("review", "reject", "held-1", "--reviewer", "bob", "--reason", "wrong")
    assert code == 2 and "no signing key" in err
    code, _, err = cli("review", "reject", "held-1", "--reviewer", "bob", "--key", str(keys["bob"]), "--reason", "wrong")
    assert code == 0, err
    (decision,) = decisions_for(settings, "held-1")
    assert check_recorded(decision, {"batch_id": "held-1"}, load_reviewers(settings.reviewers_path)) is None


def test_key_removed_from_the_reviewers_file_voids_its_pending_approval(settings, cli, keys, tmp_path):
    make_batch(settings, "held-1", failing=True)
    assert cli("review", "approve", "held-1", "--reviewer", "alice", "--key", str(keys["alice"]), "--reason", "ok")[0] == 0
    assert decide(settings, "held-1").allowed
    # alice leaves (or her key leaks and is replaced): the file now lists a new key for her.
    write_reviewers(settings.reviewers_path, {"alice": make_key(tmp_path / "new", "alice"), "bob": keys["bob"]})
    gate = decide(settings, "held-1")
    assert not gate.allowed and "does not list for alice" in gate.reason
    code, _, err = cli("publish", "held-1")
    assert code == 2 and "does not verify" in err
    assert publications(settings) == ["current"]


# --- forged ledger rows ------------------------------------------------------------------------


def approve_signed(settings: Settings, cli, key: Path, batch_id: str, reason: str = "ok") -> dict:
    code, _, err = cli("review", "approve", batch_id, "--reviewer", "alice", "--key", str(key), "--reason", reason)
    assert code == 0, err
    return decisions_for(settings, batch_id)[-1]


def forge_approval(settings: Settings, batch_id: str, row: dict, **changes) -> None:
    """Insert an approval row and flip the batch to `approved` with SQL."""
    values = {**{k: row[k] for k in ("decision", "reviewer", "reason", "decided_at", "content_sha256", "signed_message", "signature")}, **changes}
    ledger_sql(
        settings,
        """insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks, signed_message, signature)
           values (?, ?, ?, ?, ?, ?, '[]', ?, ?)""",
        (batch_id, values["decision"], values["reviewer"], values["reason"], values["decided_at"], values["content_sha256"],
         values["signed_message"], values["signature"]),
    )
    ledger_sql(settings, "update batches set status = 'approved' where batch_id = ?", (batch_id,))


def assert_refused_everywhere(settings: Settings, cli, batch_id: str, instance: dg.DagsterInstance, phrase: str) -> None:
    """The forged approval publishes nothing: gate, CLI, sensor and `review show` all say why."""
    before = publications(settings)
    gate = decide(settings, batch_id)
    assert not gate.allowed and phrase in gate.reason, gate.reason
    with pytest.raises(PublicationRefused, match="does not verify"):
        publish_if_allowed(settings, batch_id)
    code, _, err = cli("publish", batch_id)
    assert code == 2 and phrase in err, err
    result = evaluate_sensor(settings, instance)
    assert [r for r in result.run_requests if r.tags[BATCH_TAG] == batch_id] == []
    assert f"batch {batch_id} not published" in str(result.skip_reason) and phrase in str(result.skip_reason)
    observed = [e for e in result.asset_events if e.metadata["batch_id"].value == batch_id]
    assert observed and all(e.metadata["decision_signature"].value.startswith("NOT VALID") for e in observed)
    code, out, _ = cli("review", "show", batch_id, "--json")
    report = json.loads(out)
    assert report["publishable"] is False and report["decisions"][-1]["signature_valid"] is False
    assert report["decidable"] is True  # a reviewer can replace the forged decision with a signed one
    assert publications(settings) == before


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def test_forged_row_without_signature_publishes_nothing(settings, cli, instance):
    make_batch(settings, "held-1", failing=True)
    digest = get_batch(settings, "held-1").content_sha256
    ledger_sql(
        settings,
        """insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks)
           values ('held-1', 'approve', 'alice', 'looks fine', '2026-11-27T12:00:00+00:00', ?, '[]')""",
        (digest,),
    )
    ledger_sql(settings, "update batches set status = 'approved' where batch_id = 'held-1'")
    assert_refused_everywhere(settings, cli, "held-1", instance, "is not signed")


def test_valid_signature_copied_onto_another_batch_publishes_nothing(settings, cli, keys, instance):
    make_batch(settings, "held-1", failing=True)
    make_batch(settings, "held-2", failing=True, rows=4)
    genuine = approve_signed(settings, cli, keys["alice"], "held-1")
    publish_if_allowed(settings, "held-1")  # the genuine approval did its job; held-2 is newer
    # Same content hash column as held-2 would need; the signature still names held-1.
    forge_approval(settings, "held-2", genuine, content_sha256=get_batch(settings, "held-2").content_sha256)
    assert_refused_everywhere(settings, cli, "held-2", instance, "does not verify")
    # The signature names held-1: the gate says the decision was copied.
    assert "alice signed this decision for batch_id 'held-1', not 'held-2'" in decide(settings, "held-2").reason


def test_valid_signature_with_changed_reason_publishes_nothing(settings, cli, keys, instance):
    make_batch(settings, "held-1", failing=True)
    approve_signed(settings, cli, keys["alice"], "held-1", reason="only the H100 row is off")
    ledger_sql(settings, "update decisions set reason = 'all fine' where batch_id = 'held-1'")
    assert_refused_everywhere(settings, cli, "held-1", instance, "is not what alice signed")


def test_signed_message_rewritten_to_another_batch_publishes_nothing(settings, cli, keys, instance):
    """Rewriting the signed bytes too (batch id, hash) breaks the signature itself."""
    make_batch(settings, "held-1", failing=True)
    make_batch(settings, "held-2", failing=True, rows=4)
    genuine = approve_signed(settings, cli, keys["alice"], "held-1")
    publish_if_allowed(settings, "held-1")  # the genuine approval did its job; held-2 is newer
    target = get_batch(settings, "held-2")
    fields = {k: v for k, v in json.loads(genuine["signed_message"]).items() if k != "format"}
    fields |= {"batch_id": "held-2", "content_sha256": target.content_sha256}
    forge_approval(settings, "held-2", genuine, content_sha256=target.content_sha256,
                   signed_message=canonical_message(fields).decode())
    assert_refused_everywhere(settings, cli, "held-2", instance, "does not match the decision")


def test_forgery_signed_with_an_unlisted_key_publishes_nothing(settings, cli, tmp_path, instance):
    """A forger with their own key signs a perfect decision under alice's name."""
    make_batch(settings, "held-1", failing=True)
    batch = get_batch(settings, "held-1")
    mallory = make_key(tmp_path / "mallory", "mallory")
    fields = {"kind": "batch_decision", "batch_id": "held-1", "content_sha256": batch.content_sha256, "decision": "approve",
              "reason": "ok", "decided_at": "2026-11-27T12:00:00+00:00", "reviewer": "alice"}
    message = canonical_message(fields)
    forge_approval(settings, "held-1", {**fields, "signed_message": message.decode(), "signature": sign(message, mallory)})
    assert_refused_everywhere(settings, cli, "held-1", instance, "does not list for alice")


def test_forged_approval_can_be_replaced_by_a_signed_decision(settings, cli, keys, instance):
    make_batch(settings, "held-1", failing=True, rows=6)
    ledger_sql(settings, """insert into decisions (batch_id, decision, reviewer, reason, decided_at, content_sha256, failed_checks)
                            values ('held-1', 'approve', 'alice', 'x', 'now', 'x', '[]')""")
    ledger_sql(settings, "update batches set status = 'approved' where batch_id = 'held-1'")
    code, _, err = cli("review", "reject", "held-1", "--reviewer", "bob", "--key", str(keys["bob"]), "--reason", "not mine")
    assert code == 0, err
    assert get_batch(settings, "held-1").status == "rejected"
    # Once the decision on record verifies, it is final.
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--key", str(keys["alice"]), "--reason", "ok")
    assert code == 2 and "is rejected, not held" in err


def test_status_flipped_to_passed_by_hand_publishes_nothing(settings, cli):
    make_batch(settings, "held-1", failing=True)
    ledger_sql(settings, "update batches set status = 'passed', checks_failed = 0, failed_checks = '[]' where batch_id = 'held-1'")
    gate = decide(settings, "held-1")
    assert not gate.allowed and "its file records 1 failed or errored checks" in gate.reason
    assert cli("publish", "held-1")[0] == 2


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_requires_a_signature_by_the_listed_key(settings, cli, keys, tmp_path):
    make_batch(settings, "held-1", failing=True, rows=5)
    approve_signed(settings, cli, keys["alice"], "held-1")
    assert cli("publish", "held-1")[0] == 0
    assert publications(settings) == ["current", "held-1"]

    code, _, err = cli("publish", "--rollback", "--reviewer", "alice", "--reason", "bad numbers")
    assert code == 2 and "no signing key" in err
    code, _, err = cli("publish", "--rollback", "--reviewer", "alice", "--key", str(keys["bob"]), "--reason", "bad numbers")
    assert code == 2 and "signed with bob's key, not alice's" in err
    mallory = make_key(tmp_path / "mallory", "mallory")
    code, _, err = cli("publish", "--rollback", "--reviewer", "alice", "--key", str(mallory), "--reason", "bad numbers")
    assert code == 2 and "does not list for alice" in err
    assert publications(settings) == ["current", "held-1"]

    code, out, err = cli("publish", "--rollback", "--reviewer", "alice", "--key", str(keys["alice"]), "--reason", "bad numbers")
    assert code == 0, err
    assert "signature verified" in out
    history = read_publications(settings.published_path)
    assert (history[-1]["approval_kind"], history[-1]["batch_id"], history[-1]["approved_by"]) == ("rollback", "current", "alice")
    con = sqlite3.connect(ledger_path(settings))
    try:
        (row,) = con.execute("select from_publication_id, to_publication_id, reviewer, reason, signed_message, signature, publication_id from rollbacks").fetchall()
    finally:
        con.close()
    assert row[:4] == (history[1]["publication_id"], history[0]["publication_id"], "alice", "bad numbers")
    assert json.loads(row[4])["decision"] == "rollback" and row[5].startswith("-----BEGIN SSH SIGNATURE-----")
    assert row[6] == history[-1]["publication_id"]


# --- the reviewers file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reviewers:\n  - name: alice\n    email: alice@example.com\n", "has no public_key"),
        ("reviewers:\n  - name: alice\n    public_key: not-a-key\n", "is not an OpenSSH public key"),
        ("reviewers:\n  - name: alice\n    public_key: ssh-ed25519 AAAA%%%%\n", "not valid base64"),
        ("reviewers:\n  - name: alice\n    public_key: ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n", "is not a ssh-ed25519 key"),
        ("reviewers:\n  - name: al ice\n    public_key: x\n", "no spaces"),
    ],
)
def test_reviewers_file_errors_are_clear(tmp_path, text, message):
    from pipelines.reviewers import ReviewError

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ReviewError, match=message):
        load_reviewers(path)


def test_old_format_reviewers_file_refuses_every_decision_with_a_clear_message(settings, cli, keys, tmp_path, monkeypatch):
    make_batch(settings, "held-1", failing=True)
    old = tmp_path / "old.yaml"
    old.write_text("reviewers:\n  - name: alice\n    email: alice@example.com\n")
    with pytest.raises(ReviewError, match="reviewer 'alice' has no public_key") as refused:
        approve(Settings.for_data_dir(settings.data_dir, reviewers_path=old), "held-1",
                reviewer="alice", reason="ok", key=keys["alice"])
    assert "public_key:" in str(refused.value)
    monkeypatch.setenv("FITATLAS_REVIEWERS", str(old))  # the CLI's reviewers file
    code, _, err = cli("review", "approve", "held-1", "--reviewer", "alice", "--key", str(keys["alice"]), "--reason", "ok")
    assert code == 2 and "reviewer 'alice' has no public_key" in err and "public_key:" in err
    assert decisions_for(settings, "held-1") == [] and get_batch(settings, "held-1").status == "held"


def test_duplicate_names_and_shared_keys_are_refused(tmp_path, keys):
    path = tmp_path / "dup.yaml"
    path.write_text(f'reviewers:\n  - name: alice\n    public_key: "{public_key(keys["alice"])}"\n'
                    f'  - name: carol\n    public_key: "{public_key(keys["alice"])}"\n')
    from pipelines.reviewers import ReviewError

    with pytest.raises(ReviewError, match="same key is listed for 'alice'"):
        load_reviewers(path)
