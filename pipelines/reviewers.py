"""Who may decide, and proof that they did: the reviewers file and SSH-signed decisions.

The reviewers file (`reviewers.yaml` at the repo root, or `FITATLAS_REVIEWERS`) lists each
reviewer with an SSH public key; it changes only through a reviewed commit. A decision (approve or
reject a held batch, roll back a publication) is a small canonical JSON document naming the batch
id, its content hash, the decision, the reason, the time and the reviewer. The reviewer signs
exactly those bytes with `ssh-keygen -Y sign -n fitatlas-review`, as git signs commits with SSH
keys; the review ledger stores the signed bytes and the signature.

Verification builds an OpenSSH allowed-signers file from the reviewers file and runs
`ssh-keygen -Y verify -I <reviewer> -n fitatlas-review`, so a signature counts for a name only
when it was made by the key listed for that name. It runs when a decision is recorded and again
before anything is published, against the reviewers file of that moment: a decision typed into
the ledger by hand, copied from another batch, altered after signing, or made by a key that was
since removed from the file publishes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "fitatlas-review"
MESSAGE_FORMAT = "fitatlas-review-decision/1"
KEY_ENV = "FITATLAS_REVIEW_KEY"
# A name is an allowed-signers principal: no spaces, commas, quotes or wildcards.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
KEY_TYPES = (
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)
# Fields of a signed decision, in addition to `format`; every one is also a ledger column.
BATCH_DECISION_FIELDS = ("kind", "batch_id", "content_sha256", "decision", "reason", "decided_at", "reviewer")
ROLLBACK_FIELDS = (*BATCH_DECISION_FIELDS, "from_publication_id", "to_publication_id")
SIGN_TIMEOUT_S = 120
VERIFY_TIMEOUT_S = 30
NEW_FORMAT_HINT = (
    'each entry is `- name: alice` + `public_key: "ssh-ed25519 AAAA... alice@laptop"` (the one line of '
    "your key's .pub file); see the README's reviewer walkthrough"
)


class ReviewError(Exception):
    """A reviewer-facing refusal (unknown batch, unauthorised reviewer, bad signature, ...)."""


@dataclass(frozen=True)
class Reviewer:
    name: str
    key_type: str
    key_base64: str
    comment: str

    @property
    def public_key(self) -> str:
        return f"{self.key_type} {self.key_base64}"

    @property
    def fingerprint(self) -> str:
        """SHA256:... as `ssh-keygen -l` prints it."""
        digest = hashlib.sha256(base64.b64decode(self.key_base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(text: Any, where: str) -> tuple[str, str, str]:
    """(type, base64 blob, comment) of one OpenSSH public key line; ReviewError if it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ReviewError(f"{where}: public_key must be one OpenSSH public key line, {NEW_FORMAT_HINT}")
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ReviewError(
            f"{where}: public_key {text.strip()[:40]!r} is not an OpenSSH public key "
            f"(expected one of {', '.join(KEY_TYPES)} followed by the base64 key)"
        )
    key_type, blob_text = parts[0], parts[1]
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ReviewError(f"{where}: public_key's key data is not valid base64 ({error})") from error
    name_length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if name_length <= 0 or blob[4:4 + name_length] != key_type.encode():
        raise ReviewError(f"{where}: public_key's key data is not a {key_type} key (truncated or pasted wrong?)")
    return key_type, blob_text, parts[2].strip() if len(parts) > 2 else ""


class Reviewers(dict[str, Reviewer]):
    """{name: Reviewer} as listed in the reviewers file at `path` (named in every refusal)."""

    def __init__(self, path: Path, reviewers: dict[str, Reviewer] | None = None):
        super().__init__(reviewers or {})
        self.path = path


def load_reviewers(path: Path) -> Reviewers:
    """The reviewers file (`reviewers: [{name, public_key}, ...]`; `Settings.reviewers_path`)."""
    if not path.exists():
        raise ReviewError(f"reviewers file {path} not found (set FITATLAS_REVIEWERS or create reviewers.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ReviewError(f"reviewers file {path} is not valid YAML: {error}") from error
    entries = data.get("reviewers") if isinstance(data, dict) else None
    if entries is None:
        entries = []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise ReviewError(f"reviewers file {path}: expected `reviewers:` as a list of entries with a `name`; {NEW_FORMAT_HINT}")
    reviewers = Reviewers(path)
    fingerprints: dict[str, str] = {}
    for entry in entries:
        name = str(entry["name"]).strip()
        where = f"reviewers file {path}, reviewer {name!r}"
        if not NAME_PATTERN.match(name):
            raise ReviewError(f"{where}: a name is letters, digits and . _ @ + - (no spaces), at most 64 characters")
        if name in reviewers:
            raise ReviewError(f"{where}: listed twice")
        if "public_key" not in entry:
            raise ReviewError(
                f"{where} has no public_key: decisions are signed with SSH keys, so the old "
                f"name/email format no longer authorises anyone; {NEW_FORMAT_HINT}"
            )
        reviewer = Reviewer(name, *parse_public_key(entry["public_key"], where))
        if reviewer.fingerprint in fingerprints:
            raise ReviewError(f"{where}: the same key is listed for {fingerprints[reviewer.fingerprint]!r}; one key per reviewer")
        fingerprints[reviewer.fingerprint] = name
        reviewers[name] = reviewer
    return reviewers


def authorised_reviewer(name: str | None, reviewers: Reviewers) -> Reviewer:
    """The listed reviewer of that name; ReviewError otherwise."""
    if not name or not name.strip():
        raise ReviewError("no reviewer given: pass --reviewer NAME or set FITATLAS_REVIEWER")
    name = name.strip()
    if name not in reviewers:
        listed = ", ".join(sorted(reviewers)) or "none yet (add yours: README, reviewer walkthrough)"
        raise ReviewError(f"{name!r} is not a reviewer in {reviewers.path}; reviewers: {listed}")
    return reviewers[name]


def signing_key(key: str | os.PathLike | None) -> Path:
    """The private key to sign with (the CLI's --key, defaulting to FITATLAS_REVIEW_KEY)."""
    chosen = key
    if not chosen:
        raise ReviewError(
            f"no signing key: decisions are signed with your SSH key; pass --key PATH or set {KEY_ENV} "
            "(make one with `ssh-keygen -t ed25519 -f ~/.ssh/fitatlas_review`)"
        )
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise ReviewError(f"signing key {path} not found (--key / {KEY_ENV})")
    return path


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise ReviewError("ssh-keygen not found: signed decisions need OpenSSH 8.2 or later (apt install openssh-client)")
    return found


def canonical_message(fields: dict[str, Any]) -> bytes:
    """The exact bytes a reviewer signs: sorted-key compact JSON, UTF-8, with the format tag."""
    document = {"format": MESSAGE_FORMAT, **fields}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign(message: bytes, key: Path) -> str:
    """An armored SSH signature (namespace fitatlas-review) of `message` by `key`.

    `key` is a private key file, or a public key whose private half is in ssh-agent. A passphrase
    (or a security-key touch) is asked for on the terminal, as `git commit -S` does.
    """
    interactive = sys.stdin is not None and sys.stdin.isatty()
    with tempfile.TemporaryDirectory(prefix="fitatlas-sign-") as tmp:
        path = Path(tmp) / "decision.json"
        path.write_bytes(message)
        try:
            result = subprocess.run(
                [_ssh_keygen(), "-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(path)],
                stdin=None if interactive else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=None if interactive else SIGN_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as error:
            raise ReviewError(f"ssh-keygen did not sign with {key} within {SIGN_TIMEOUT_S} s") from error
        signature = path.with_name(path.name + ".sig")
        if result.returncode != 0 or not signature.exists():
            lines = [line.removeprefix("Enter passphrase: ") for line in result.stderr.splitlines()]
            detail = " ".join(line for line in lines if not line.startswith(("Signing file", "Write signature")))
            if "passphrase" in detail and not interactive:
                detail += " (no terminal to ask for the passphrase: `ssh-add` the key and pass its .pub as --key)"
            raise ReviewError(f"could not sign with key {key}: {detail.strip() or f'ssh-keygen exited {result.returncode}'}")
        return signature.read_text()


def allowed_signers(reviewers: dict[str, Reviewer]) -> str:
    """An OpenSSH allowed-signers file: each reviewer's key, valid for the fitatlas-review namespace only."""
    return "".join(f'{r.name} namespaces="{NAMESPACE}" {r.public_key}\n' for r in reviewers.values())


def _signing_fingerprint(message: bytes, signature_path: Path) -> str | None:
    """The fingerprint of the key that made a signature that is valid for these bytes, else None."""
    result = subprocess.run(
        [_ssh_keygen(), "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(signature_path)],
        input=message, capture_output=True, timeout=VERIFY_TIMEOUT_S,
    )
    found = re.search(rb"key (SHA256:[A-Za-z0-9+/]+)", result.stdout + result.stderr)
    return found.group(1).decode() if result.returncode == 0 and found else None


def verify(message: bytes, signature: str | None, name: str, reviewers: Reviewers) -> str | None:
    """None when `signature` is `name`'s listed key's signature of `message`; else why not."""
    if name not in reviewers:
        return f"{name!r} is not a reviewer in {reviewers.path} (any more)"
    if not signature or not signature.strip():
        return f"the decision by {name} is not signed"
    listed = reviewers[name]
    with tempfile.TemporaryDirectory(prefix="fitatlas-verify-") as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(allowed_signers(reviewers))
        signature_path = Path(tmp) / "decision.sig"
        signature_path.write_text(signature)
        result = subprocess.run(
            [_ssh_keygen(), "-Y", "verify", "-f", str(signers), "-I", name, "-n", NAMESPACE, "-s", str(signature_path)],
            input=message, capture_output=True, timeout=VERIFY_TIMEOUT_S,
        )
        if result.returncode == 0:
            return None
        fingerprint = _signing_fingerprint(message, signature_path)
    if fingerprint is None:
        return f"{name}'s signature does not match the decision it is stored with (altered, copied from another decision, or not a {NAMESPACE} signature)"
    owner = next((r.name for r in reviewers.values() if r.fingerprint == fingerprint), None)
    if owner is not None:
        return f"the decision is signed with {owner}'s key, not {name}'s (listed key {listed.fingerprint})"
    return (
        f"the decision is signed with key {fingerprint}, which {reviewers.path} does not list for {name} "
        f"(listed key {listed.fingerprint})"
    )


def signed_fields(message: bytes | str | None) -> dict[str, Any] | None:
    """The fields of a stored signed message, or None if it is not one in canonical form."""
    if message is None:
        return None
    raw = message.encode() if isinstance(message, str) else message
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != MESSAGE_FORMAT:
        return None
    fields = {k: v for k, v in document.items() if k != "format"}
    return fields if canonical_message(fields) == raw else None


def check_recorded(row: dict[str, Any], expected: dict[str, Any], reviewers: Reviewers) -> str | None:
    """None when a stored decision row is what its reviewer signed and says what `expected` says.

    `row` is a ledger row with `signed_message` and `signature`; every field the message signs must
    equal the row's column of that name and, for the keys of `expected`, the expected value (the
    batch id and content hash the gate is about to publish, the publications a rollback is about).
    """
    name = row.get("reviewer") or "?"
    if not row.get("signature") or not row.get("signed_message"):
        return f"the {row.get('decision') or 'recorded'} decision by {name} is not signed: a name alone proves nothing"
    fields = signed_fields(row["signed_message"])
    if fields is None:
        return f"the decision recorded for {name} does not carry a signed FitAtlas decision"
    required = ROLLBACK_FIELDS if fields.get("kind") == "rollback" else BATCH_DECISION_FIELDS
    missing = [key for key in required if key not in fields]
    if missing:
        return f"the signed decision recorded for {name} lacks {', '.join(missing)}"
    for key, value in expected.items():
        if fields.get(key) != value:
            return f"{fields.get('reviewer')} signed this decision for {key} {fields.get(key)!r}, not {value!r}: it was copied from another decision"
    for key, value in fields.items():
        if key in row and row[key] != value:
            return f"the ledger's {key} {row[key]!r} is not what {fields.get('reviewer')} signed ({value!r}): the row was altered"
    message = row["signed_message"]
    return verify(message.encode() if isinstance(message, str) else message, row["signature"], fields.get("reviewer", name), reviewers)
