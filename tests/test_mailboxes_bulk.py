"""``coldrelay mailbox add|bulk|list|passwd|disable|enable|remove|export`` against a real database.

The big case (100 mailboxes over 5 domains, Instantly export) runs once per module: argon2id
hashing is the cost, and it is what the thread pool is there to keep in seconds.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.db import (
    MessageState,
    QueuedMessage,
    accounts,
    create_domain,
    create_engine,
    list_mailboxes,
    session_factory,
    upgrade_database,
    verify_password,
)
from coldrelay.db.models import Mailbox
from coldrelay.provision.mailboxes import (
    Pattern,
    PersonName,
    candidates,
    hash_passwords,
    local_part,
    parse_names,
    plan_bulk,
)
from conftest import database_url

runner = CliRunner()

DOMAINS = ["alpha.test", "bravo.test", "charlie.test", "delta.test", "echo.test"]
INSTANTLY_HEADER = [
    "Email",
    "First Name",
    "Last Name",
    "IMAP Username",
    "IMAP Password",
    "IMAP Host",
    "IMAP Port",
    "SMTP Username",
    "SMTP Password",
    "SMTP Host",
    "SMTP Port",
    "Daily Limit",
    "Warmup Enabled",
    "Warmup Limit",
    "Warmup Increment",
    "Reply Rate",
]
SMARTLEAD_HEADER = [
    "from_name",
    "from_email",
    "user_name",
    "password",
    "smtp_host",
    "smtp_port",
    "imap_host",
    "imap_port",
    "max_email_per_day",
    "custom_tracking_url",
    "warmup_enabled",
    "total_warmup_per_day",
    "daily_rampup",
    "reply_rate_percentage",
    "bcc",
    "signature",
    "different_reply_to_address",
]
FIRST = ["Anna", "Bob", "Carla", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Berg", "Smith", "Novak", "Rossi", "Meyer", "Dubois", "Silva", "Kowalski", "Jensen", "Moreau"]


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its smallest cost for the small cases: the same code paths, a hash in a millisecond.

    Function-scoped, so the module's 100-mailbox run (set up before any function fixture) keeps the
    real parameters: its speed with them is the point. Verifying reads the cost from each stored
    hash, so both kinds check correctly.
    """
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def run(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def hosted_data_dir(root: Path, domains: list[str], url: str | None = None) -> Path:
    """A data directory whose database has ``domains``, made with coldrelay.db.create_domain."""
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    if url is None:
        url = f"sqlite:///{data_dir / 'coldrelay.db'}"
    else:
        (data_dir / "coldrelay.toml").write_text(f'database_url = "{url}"\n')
    upgrade_database(url)
    engine = create_engine(url)
    with session_factory(engine).begin() as session:
        for name in domains:
            create_domain(session, name)
    engine.dispose()
    return data_dir


class Db:
    """Short-lived sessions on a data directory's database, for checking what the CLI did."""

    def __init__(self, data_dir: Path) -> None:
        toml = data_dir / "coldrelay.toml"
        match = re.search(r'database_url = "([^"]+)"', toml.read_text()) if toml.exists() else None
        self.engine = create_engine(match.group(1) if match else f"sqlite:///{data_dir / 'coldrelay.db'}")

    def addresses(self) -> list[str]:
        with session_factory(self.engine)() as session:
            return [item.address for item in list_mailboxes(session)]

    def hash_of(self, address: str) -> str:
        with session_factory(self.engine)() as session:
            return session.scalars(select(Mailbox.password_hash).where(Mailbox.address == address)).one()

    def login(self, address: str, password: str) -> bool:
        with session_factory(self.engine)() as session:
            return verify_password(session, address, password) is not None

    def close(self) -> None:
        self.engine.dispose()


def flat(output: str) -> str:
    """The output with Rich's line wrapping undone."""
    return re.sub(r"\s+", " ", output)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def bulk100(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    root = tmp_path_factory.mktemp("bulk100")
    data_dir = hosted_data_dir(root, DOMAINS)
    names = root / "names.txt"
    people = [f"{first} {last}" for first, last in zip(FIRST * 2, LAST + LAST[::-1], strict=True)]  # 20 people
    names.write_text("\n".join(["", *people, "anna berg", "  ", people[3]]) + "\n")  # blanks and repeats skipped
    export = root / "instantly.csv"
    code, output = run(
        data_dir,
        "mailbox",
        "bulk",
        "--domains",
        ",".join(DOMAINS),
        "--names",
        str(names),
        "--per-domain",
        "20",
        "--export",
        str(export),
        "--format",
        "instantly",
    )
    assert code == 0, output
    yield data_dir, export, output


def test_bulk_creates_100_mailboxes_in_seconds(bulk100: tuple[Path, Path, str]) -> None:
    data_dir, export, output = bulk100
    # No wall-clock assertion: on a shared runner it measures the neighbours. The CLI prints its own
    # time; unloaded, two cores make the 100 argon2id hashes in about 13 s (see hash_passwords).
    assert "Created 100 mailboxes across 5 domain(s)" in flat(output)
    db = Db(data_dir)
    addresses = db.addresses()
    db.close()
    assert len(addresses) == 100
    for domain in DOMAINS:
        at_domain = [address for address in addresses if address.endswith("@" + domain)]
        assert len(at_domain) == 20
        # 20 distinct people, one mailbox each, first pattern ("first") where free, then first.last.
        assert "anna@" + domain in at_domain
    assert export.stat().st_mode & 0o777 == 0o600


def test_instantly_export_every_cell_filled(bulk100: tuple[Path, Path, str]) -> None:
    data_dir, export, _ = bulk100
    header, rows = read_csv(export)
    assert header == INSTANTLY_HEADER
    assert len(rows) == 100
    for row in rows:
        assert all(row[column] != "" for column in INSTANTLY_HEADER), row
        domain = row["Email"].partition("@")[2]
        assert row["IMAP Username"] == row["SMTP Username"] == row["Email"]
        assert row["IMAP Password"] == row["SMTP Password"]
        assert (row["SMTP Host"], row["SMTP Port"]) == (f"box.{domain}", "587")
        assert (row["IMAP Host"], row["IMAP Port"]) == (f"box.{domain}", "993")
        # The default cap of 50 is split between campaigns and warm-up, so the platform never exceeds it.
        assert (row["Daily Limit"], row["Warmup Enabled"], row["Warmup Limit"]) == ("30", "TRUE", "20")
        assert (row["Warmup Increment"], row["Reply Rate"]) == ("1", "30")
    anna = next(row for row in rows if row["Email"] == "anna@alpha.test")
    assert (anna["First Name"], anna["Last Name"]) == ("Anna", "Berg")
    passwords = [row["SMTP Password"] for row in rows]
    assert len(set(passwords)) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9]{20}", password) for password in passwords)
    db = Db(data_dir)
    try:
        for domain in DOMAINS:  # one login per domain: each verification is a deliberate 0.2 s of argon2
            row = next(row for row in rows if row["Email"].endswith("@" + domain))
            assert db.login(row["Email"], row["SMTP Password"])
        assert not db.login(rows[0]["Email"], rows[1]["SMTP Password"])
    finally:
        db.close()


def test_list_json(bulk100: tuple[Path, Path, str]) -> None:
    data_dir = bulk100[0]
    code, output = run(data_dir, "mailbox", "list", "--domain", "echo.test", "--json")
    assert code == 0, output
    rows = json.loads(output)
    assert len(rows) == 20
    assert rows[0]["address"].endswith("@echo.test")
    assert rows[0]["daily_cap"] is None and rows[0]["effective_daily_cap"] == 50 and rows[0]["enabled"] is True


@pytest.fixture
def small(tmp_path: Path) -> Path:
    data_dir = hosted_data_dir(tmp_path, ["one.test", "two.test"])
    (tmp_path / "names.txt").write_text("Anna Berg\nBob Smith\n")
    return data_dir


def bulk(data_dir: Path, *extra: str) -> tuple[int, str]:
    return run(
        data_dir, "mailbox", "bulk", "--domains", "one.test,two.test", "--names", str(data_dir.parent / "names.txt"), *extra
    )


def test_second_run_skips_existing_addresses(small: Path) -> None:
    first = small.parent / "first.csv"
    code, output = bulk(small, "--per-domain", "2", "--export", str(first), "--format", "smartlead")
    assert code == 0, output
    header, rows = read_csv(first)
    assert header == SMARTLEAD_HEADER
    assert sorted(row["from_email"] for row in rows) == ["anna@one.test", "anna@two.test", "bob@one.test", "bob@two.test"]
    for row in rows:
        assert row["user_name"] == row["from_email"]
        assert (row["smtp_port"], row["imap_port"], row["max_email_per_day"]) == ("587", "993", "30")
        assert (row["warmup_enabled"], row["total_warmup_per_day"], row["daily_rampup"]) == ("TRUE", "20", "5")
        assert row["custom_tracking_url"] == row["bcc"] == row["signature"] == row["different_reply_to_address"] == ""
    db = Db(small)
    before = {address: db.hash_of(address) for address in db.addresses()}
    anna = next(row for row in rows if row["from_email"] == "anna@one.test")
    assert anna["from_name"] == "Anna Berg"
    assert db.login("anna@one.test", anna["password"])

    second = small.parent / "second.csv"
    code, output = bulk(small, "--per-domain", "2", "--export", str(second))
    assert code == 0, output
    assert "Skipped 4 existing address(es): anna@one.test, bob@one.test, anna@two.test, bob@two.test" in flat(output)
    _, rows = read_csv(second)
    assert sorted(row["address"] for row in rows) == [
        "anna.berg@one.test",
        "anna.berg@two.test",
        "bob.smith@one.test",
        "bob.smith@two.test",
    ]
    # The existing mailboxes are untouched: same hashes, and the first export's password still logs in.
    assert {address: db.hash_of(address) for address in before} == before
    assert db.login("anna@one.test", anna["password"])
    db.close()


def test_not_enough_addresses_creates_nothing(small: Path) -> None:
    export = small.parent / "out.csv"
    code, output = bulk(small, "--per-domain", "3", "--pattern", "first", "--export", str(export))
    assert code == 2
    assert "Not enough free addresses (one.test: 1 short; two.test: 1 short)" in flat(output)
    assert not export.exists()
    db = Db(small)
    assert db.addresses() == []
    db.close()


def test_bulk_refusals(small: Path) -> None:
    names = str(small.parent / "names.txt")
    code, output = run(small, "mailbox", "bulk", "--domains", "one.test", "--names", names, "--per-domain", "1")
    assert code == 2
    assert "--export FILE is required" in output
    existing = small.parent / "keep.csv"
    existing.write_text("old passwords\n")
    code, output = bulk(small, "--per-domain", "1", "--export", str(existing))
    assert code == 2
    assert "exists already" in output
    assert existing.read_text() == "old passwords\n"
    code, output = run(
        small, "mailbox", "bulk", "--domains", "one.test,nope.test", "--names", names, "--per-domain", "1", "--export", "x.csv"
    )
    assert code == 1
    assert "The domain nope.test is not hosted here" in output
    code, output = run(
        small, "mailbox", "bulk", "--domains", "one.test", "--names", "missing.txt", "--per-domain", "1", "--export", "x.csv"
    )
    assert code == 2
    assert "missing.txt: no such file" in output
    code, output = bulk(small, "--per-domain", "0", "--export", str(small.parent / "y.csv"))
    assert code == 2
    assert "must be 1 to 100" in output


def test_dry_run_changes_nothing(small: Path) -> None:
    code, output = bulk(small, "--per-domain", "2", "--dry-run")
    assert code == 0, output
    assert "anna@one.test  Anna Berg" in output
    assert "Would create 4 mailboxes" in output
    db = Db(small)
    assert db.addresses() == []
    db.close()


def test_add_generates_and_shows_a_password_once(small: Path) -> None:
    export = small.parent / "anna.csv"
    code, output = run(
        small,
        "mailbox",
        "add",
        "anna@one.test",
        "--name",
        "Anna Berg",
        "--export",
        str(export),
        "--smtp-host",
        "mail.example.net",
    )
    assert code == 0, output
    match = re.search(r"only its hash is stored\): ([A-Za-z0-9]{20})$", output, re.MULTILINE)
    assert match, output
    assert output.count(match.group(1)) == 1
    header, rows = read_csv(export)
    assert header[:3] == ["address", "name", "password"]
    assert rows == [
        {
            "address": "anna@one.test",
            "name": "Anna Berg",
            "password": match.group(1),
            "smtp_host": "mail.example.net",
            "smtp_port": "587",
            "smtp_security": "STARTTLS",
            "imap_host": "box.one.test",
            "imap_port": "993",
            "imap_security": "SSL/TLS",
            "daily_limit": "50",
        }
    ]
    db = Db(small)
    assert db.login("anna@one.test", match.group(1))
    db.close()


def test_add_with_a_failing_export_adds_nothing(small: Path) -> None:
    code, output = run(small, "mailbox", "add", "anna@one.test", "--export", str(small.parent / "no" / "such" / "dir.csv"))
    assert code == 2
    assert "cannot be created" in output
    db = Db(small)
    assert db.addresses() == []
    db.close()


def test_passwd(small: Path) -> None:
    assert run(small, "mailbox", "add", "anna@one.test", "--password", "first password")[0] == 0
    export = small.parent / "new.csv"
    code, output = run(small, "mailbox", "passwd", "Anna@One.test", "--export", str(export), "--format", "instantly")
    assert code == 0, output
    match = re.search(r"only its hash is stored\): ([A-Za-z0-9]{20})$", output, re.MULTILINE)
    assert match, output
    _, rows = read_csv(export)
    assert rows[0]["SMTP Password"] == match.group(1)
    db = Db(small)
    assert db.login("anna@one.test", match.group(1))
    assert not db.login("anna@one.test", "first password")
    db.close()
    code, output = run(small, "mailbox", "passwd", "anna@one.test", "--password", "short")
    assert code == 2
    assert "at least 8 characters" in output
    code, output = run(small, "mailbox", "passwd", "zed@one.test", "--password", "long enough")
    assert code == 1
    assert "There is no mailbox zed@one.test" in output


def test_disable_and_enable(small: Path) -> None:
    assert run(small, "mailbox", "add", "anna@one.test", "--password", "a password")[0] == 0
    code, output = run(small, "mailbox", "disable", "anna@one.test")
    assert code == 0, output
    assert "disabled" in output
    db = Db(small)
    assert not db.login("anna@one.test", "a password")
    code, output = run(small, "mailbox", "list", "--json")
    assert json.loads(output)[0]["enabled"] is False
    # export leaves disabled mailboxes out (their logins would fail at the platform anyway)
    code, output = run(small, "mailbox", "export", "--reset-passwords", "--output", str(small.parent / "e.csv"))
    assert code == 1
    assert "No enabled mailboxes to export" in output
    assert not (small.parent / "e.csv").exists()
    code, output = run(small, "mailbox", "enable", "anna@one.test")
    assert code == 0, output
    assert db.login("anna@one.test", "a password")
    db.close()


def queue_message(data_dir: Path, sender: str, state: MessageState) -> str:
    db = Db(data_dir)
    with session_factory(db.engine).begin() as session:
        message = QueuedMessage(
            sender=sender, recipients=["x@example.org"], message_blob=b"Subject: hi\r\n\r\nhi\r\n", state=state
        )
        session.add(message)
        session.flush()
        message_id = message.id
    db.close()
    return message_id


def test_remove_waits_for_the_queue(small: Path) -> None:
    assert run(small, "mailbox", "add", "anna@one.test", "--password", "a password")[0] == 0
    message_id = queue_message(small, "anna@one.test", MessageState.DEFERRED)
    queue_message(small, "bob@one.test", MessageState.QUEUED)  # another sender's mail does not count
    code, output = run(small, "mailbox", "remove", "anna@one.test", "--yes")
    assert code == 1
    assert "anna@one.test still has 1 message in the queue" in flat(output)
    code, output = run(small, "mailbox", "remove", "anna@one.test", input="n\n")
    assert code == 1
    assert "Nothing removed." in output
    db = Db(small)
    with session_factory(db.engine).begin() as session:
        session.get_one(QueuedMessage, message_id).state = MessageState.BOUNCED
    code, output = run(small, "mailbox", "remove", "anna@one.test", "--yes")
    assert code == 0, output
    assert "Mailbox anna@one.test removed." in output
    assert db.addresses() == []
    db.close()
    code, output = run(small, "mailbox", "remove", "anna@one.test", "--yes")
    assert code == 1
    assert "There is no mailbox anna@one.test" in output


def test_export_requires_reset_and_resets(small: Path) -> None:
    for address in ("anna@one.test", "bob@two.test"):
        assert run(small, "mailbox", "add", address, "--password", "old password")[0] == 0
    code, output = run(small, "mailbox", "export", "--format", "instantly")
    assert code == 2
    assert "stored only as argon2id hashes" in output and "--reset-passwords" in output
    out = small.parent / "all.csv"
    code, output = run(
        small, "mailbox", "export", "--format", "csv", "--domain", "one.test", "--reset-passwords", "--output", str(out)
    )
    assert code == 0, output
    _, rows = read_csv(out)
    assert [row["address"] for row in rows] == ["anna@one.test"]
    db = Db(small)
    assert db.login("anna@one.test", rows[0]["password"])
    assert not db.login("anna@one.test", "old password")
    assert db.login("bob@two.test", "old password")  # other domains untouched
    db.close()
    # To standard output when no file is given: the CSV, parseable as it is printed.
    code, output = run(small, "mailbox", "export", "--format", "smartlead", "--domain", "two.test", "--reset-passwords")
    assert code == 0, output
    reader = csv.DictReader(line for line in output.splitlines() if "," in line)
    assert reader.fieldnames == SMARTLEAD_HEADER
    assert [row["from_email"] for row in reader] == ["bob@two.test"]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", request, tmp_path, migrate=True)


def test_bulk_and_remove_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    data_dir = hosted_data_dir(tmp_path, ["one.test", "two.test"], pg_url)
    (tmp_path / "names.txt").write_text("Anna Berg\nBob Smith\n")
    code, output = bulk(data_dir, "--per-domain", "1", "--export", str(tmp_path / "pg.csv"))
    assert code == 0, output
    code, output = bulk(data_dir, "--per-domain", "1", "--dry-run")
    assert "Skipped 2 existing address(es): anna@one.test, bob@two.test" in flat(output)
    queue_message(data_dir, "anna@one.test", MessageState.LEASED)
    assert run(data_dir, "mailbox", "remove", "anna@one.test", "--yes")[0] == 1
    assert run(data_dir, "mailbox", "remove", "bob@two.test", "--yes")[0] == 0
    db = Db(data_dir)
    assert db.addresses() == ["anna@one.test"]
    db.close()


# --- planning, without a database ---


def test_patterns() -> None:
    anna = PersonName("Anna", "Berg")
    assert [local_part(anna, pattern) for pattern in Pattern] == ["anna", "anna.berg", "aberg", "annab", "a.berg"]
    assert local_part(PersonName("Zoë", "Ångström-Øre"), Pattern.FIRST_DOT_LAST) == "zoe.angstromore"
    assert local_part(PersonName("Cher", ""), Pattern.FLAST) is None
    assert candidates(PersonName("Cher", ""), "x.test", list(Pattern)) == ["cher@x.test"]
    assert candidates(PersonName("A" * 40, "B" * 40), "x.test", [Pattern.FIRST_DOT_LAST, Pattern.FIRST]) == [f"{'a' * 40}@x.test"]


def test_names_file_rules() -> None:
    people = parse_names(["# team", "Anna Berg", "", "ANNA  berg", "Jan van der Berg", "Cher"])
    assert people == [PersonName("Anna", "Berg"), PersonName("Jan", "van der Berg"), PersonName("Cher", "")]
    with pytest.raises(ValueError, match=r"line 2: '李 小龙' has no first name usable"):
        parse_names(["Anna Berg", "李 小龙"])
    with pytest.raises(ValueError, match="no names"):
        parse_names(["", "# nobody"])


def test_names_are_dealt_across_domains() -> None:
    people = [PersonName("Anna", "Berg"), PersonName("Bob", "Smith"), PersonName("Carla", "Novak")]
    plan = plan_bulk(["a.test", "b.test"], people, 2, [Pattern.FIRST, Pattern.FIRST_DOT_LAST], existing={"bob@a.test"})
    assert [item.address for item in plan.planned] == ["anna@a.test", "bob.smith@a.test", "carla@b.test", "anna@b.test"]
    assert plan.skipped_existing == ["bob@a.test"]
    assert plan.shortfall == {}
    # One person, two domains, three mailboxes each: the name comes round again and takes its next pattern.
    plan = plan_bulk(["a.test"], people[:1], 3, [Pattern.FIRST, Pattern.FLAST], existing=set())
    assert [item.address for item in plan.planned] == ["anna@a.test", "aberg@a.test"]
    assert plan.shortfall == {"a.test": 1}


def test_hash_pool_keeps_each_hash_with_its_password() -> None:
    passwords = [f"password number {n}" for n in range(4)]
    hashes = hash_passwords(passwords, workers=4)
    hasher = PasswordHasher()
    for password, password_hash in zip(passwords, hashes, strict=True):
        assert password_hash.startswith("$argon2id$")
        assert hasher.verify(password_hash, password)
