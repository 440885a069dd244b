"""``coldrelay queue`` and ``coldrelay senders`` as a person types them, against a SQLite data directory
seeded through the real queue; and a ``delete`` prompt that keeps no lock while it waits."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select as select_module
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
from sqlalchemy import Engine, insert, update
from typer.testing import CliRunner

from coldrelay.cli.context import AppContext
from coldrelay.cli.queue_cmd import queue_app
from coldrelay.cli.senders_cmd import senders_app
from coldrelay.config import ensure_data_dir
from coldrelay.db import DeliveryLog, DeliveryOutcome, LogSource, MessageState, QueuedMessage, create_engine, upgrade_database
from coldrelay.mta.queue import HELD_UNTIL, MailQueue

SENDER = "anna@sender.test"
MESSAGE = (
    b"From: Anna Berg <anna@sender.test>\r\nTo: bob@gmail.com\r\nSubject: =?utf-8?q?Q3_=E2=80=93_hiring?=\r\n"
    b"Message-ID: <c0ld.7@sender.test>\r\n\r\nHi Bob\r\n"
)
GMAIL_REPLY = "The email account that you tried to reach does not exist. gsmtp"


def cli() -> typer.Typer:
    """The two sub-apps under a root callback like ``coldrelay``'s (they are registered in cli/main.py later)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context, data_dir: Annotated[Path, typer.Option("--data-dir")]) -> None:
        ctx.obj = AppContext(data_dir.absolute())

    app.add_typer(queue_app, name="queue")
    app.add_typer(senders_app, name="senders")
    return app


runner = CliRunner()
APP = cli()


def run(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(APP, ["--data-dir", str(data_dir), *args], input=input, env={"COLUMNS": "250"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@dataclass
class Seeded:
    data_dir: Path
    engine: Engine
    queued: str
    deferred: str
    held: str
    delivered: str


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    """Four messages, one per state that matters, with a try, an error and delivery-log rows."""
    data_dir = ensure_data_dir(tmp_path / "data")
    url = f"sqlite:///{data_dir}/coldrelay.db"
    upgrade_database(url)
    engine = create_engine(url)

    async def fill() -> tuple[str, str, str, str]:
        async with MailQueue(engine, data_dir / "spool") as queue:
            delivered = await queue.enqueue(SENDER, ["carl@x.test"], MESSAGE)
            [leased] = await queue.lease("test-worker", limit=1)
            await queue.mark_delivered(leased.id, "test-worker")
            deferred = await queue.enqueue(SENDER, ["bob@gmail.com", "dora@y.test"], MESSAGE)
            held = await queue.enqueue(SENDER, ["eve@z.test"], MESSAGE)
            queued = await queue.enqueue("bert@sender.test", ["fay@w.test"], MESSAGE)
            return queued, deferred, held, delivered

    queued, deferred, held, delivered = asyncio.run(fill())
    with engine.begin() as connection:
        connection.execute(
            update(QueuedMessage)
            .where(QueuedMessage.id == deferred)
            .values(state=MessageState.DEFERRED, tries=2, last_error="451 4.7.1 Greylisted, come back later")
        )
        connection.execute(
            update(QueuedMessage).where(QueuedMessage.id == held).values(state=MessageState.DEFERRED, next_attempt_at=HELD_UNTIL)
        )
        row = {"message_id": deferred, "sender": SENDER, "source": LogSource.ATTEMPT, "remote_host": "gmail-smtp-in.l.google.com"}
        for values in (
            {
                **row,
                "recipient": "bob@gmail.com",
                "outcome": DeliveryOutcome.BOUNCED,
                "hard_bounce": True,
                "reply_code": 550,
                "enhanced_code": "5.1.1",
                "reply_text": GMAIL_REPLY,
                "reason": "userunknown",
                "provider": "google",
                "article": "google-550-5-1-1-account-does-not-exist",
                "attempt": 1,
            },
            {
                **row,
                "recipient": "dora@y.test",
                "outcome": DeliveryOutcome.DEFERRED,
                "reply_code": 451,
                "enhanced_code": "4.7.1",
                "reply_text": "Greylisted, come back later",
                "hard_bounce": False,
                "reason": "onhold",
                "attempt": 2,
            },
        ):
            connection.execute(insert(DeliveryLog).values(values))
    yield Seeded(data_dir, engine, queued, deferred, held, delivered)
    engine.dispose()


def states(seeded: Seeded) -> dict[str, str]:
    """Every message's state as the queue itself reports it."""

    async def listing() -> dict[str, str]:
        return {entry.id: entry.state.value for entry in await MailQueue(seeded.engine, seeded.data_dir / "spool").list()}

    return asyncio.run(listing())


# --- queue list / show ---------------------------------------------------------------------------------


def test_list_shows_pending_messages_and_counts(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "queue", "list")
    assert code == 0, output
    assert "3 messages" in output
    assert seeded.delivered not in output  # final states only when asked for
    assert re.search(rf"{seeded.deferred}\s+│ anna@sender\.test\s+│ bob@gmail\.com \+1\s+│ deferred\s+│ 2\s+│ \d{{4}}-", output)
    assert "451 4.7.1 Greylisted, come back later" in output
    assert re.search(rf"{seeded.held}\s+│ anna@sender\.test\s+│ eve@z\.test\s+│ held\s+│ 0\s+│\s+│", output)
    assert "4 messages in the queue: 1 queued, 1 deferred, 1 held, 1 delivered." in output


def test_list_one_state_as_json(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "queue", "list", "--state", "deferred", "--json")
    assert code == 0, output
    document = json.loads(output)
    assert document["counts"] == {"queued": 1, "leased": 0, "deferred": 1, "held": 1, "delivered": 1, "bounced": 0}
    [message] = document["messages"]
    assert message["id"] == seeded.deferred
    assert message["recipients"] == ["bob@gmail.com", "dora@y.test"]
    assert (message["state"], message["tries"], message["last_error"]) == ("deferred", 2, "451 4.7.1 Greylisted, come back later")
    held = json.loads(run(seeded.data_dir, "queue", "list", "--state", "held", "--json")[1])["messages"]
    assert [(m["id"], m["next_attempt_at"]) for m in held] == [(seeded.held, None)]


def test_list_limit_and_empty_states(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "queue", "list", "--limit", "1")
    assert code == 0, output
    assert "3 messages, first 1 shown" in output
    code, output = run(seeded.data_dir, "queue", "list", "--state", "bounced")
    assert (code, output.split(".")[0]) == (0, "No messages in state bounced")
    code, output = run(seeded.data_dir, "queue", "list", "--state", "lost")
    assert code == 2
    assert "lost" in output


def test_show_entry_headers_and_delivery_log(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "queue", "show", seeded.deferred)
    assert code == 0, output
    for line in (
        f"ID: {seeded.deferred}",
        "State: deferred",
        "Recipients: bob@gmail.com, dora@y.test",
        "Tries: 2",
        "From: Anna Berg <anna@sender.test>",
        "Subject: Q3 – hiring",
        "Message-ID: <c0ld.7@sender.test>",
        "2 delivery-log rows",
        "How to fix: coldrelay errors show google-550-5-1-1-account-does-not-exist",
    ):
        assert line in output, line
    assert re.search(
        r"bob@gmail\.com\s+│ bounced, hard\s+│ 550 5\.1\.1 The email account .*│ userunknown\s+│ google\s+│ google-550", output
    )
    code, output = run(seeded.data_dir, "queue", "show", seeded.deferred, "--json")
    document = json.loads(output)
    assert document["headers"]["Subject"] == "Q3 – hiring"
    assert [(d["recipient"], d["outcome"], d["reason"], d["article"]) for d in document["deliveries"]] == [
        ("bob@gmail.com", "bounced", "userunknown", "google-550-5-1-1-account-does-not-exist"),
        ("dora@y.test", "deferred", "onhold", None),
    ]


def test_show_when_the_spool_file_is_gone(seeded: Seeded) -> None:
    for file in (seeded.data_dir / "spool").rglob(f"{seeded.queued}*"):
        file.unlink()
    code, output = run(seeded.data_dir, "queue", "show", seeded.queued)
    assert code == 0, output
    assert "The message itself cannot be read" in output
    assert "No delivery attempts yet." in output


@pytest.mark.parametrize("command", ["show", "retry", "delete"])
def test_unknown_id_is_one_line_and_exit_2(seeded: Seeded, command: str) -> None:
    code, output = run(seeded.data_dir, "queue", command, "0123456789abcdef", *(["--yes"] if command == "delete" else []))
    assert (code, output) == (2, "No message with id 0123456789abcdef in the queue.\n")


# --- queue retry / delete / flush ----------------------------------------------------------------------


def test_retry_deferred_and_held_but_not_delivered(seeded: Seeded) -> None:
    for message_id in (seeded.deferred, seeded.held):
        code, output = run(seeded.data_dir, "queue", "retry", message_id)
        assert code == 0, output
        assert f"Message {message_id} is due now" in output
    code, output = run(seeded.data_dir, "queue", "retry", seeded.delivered)
    assert code == 1
    assert "is delivered; only queued, deferred or held messages can be retried" in output
    found = states(seeded)
    assert (found[seeded.deferred], found[seeded.held], found[seeded.delivered]) == ("queued", "queued", "delivered")


def test_delete_asks_unless_yes(seeded: Seeded) -> None:
    spool_files = {p.name for p in (seeded.data_dir / "spool").rglob("*") if p.is_file()}
    code, output = run(seeded.data_dir, "queue", "delete", seeded.held, input="n\n")
    assert code == 1
    assert f"Delete message {seeded.held} from anna@sender.test to 1 recipient (held)?" in output
    assert "Nothing deleted." in output
    assert seeded.held in states(seeded)
    code, output = run(seeded.data_dir, "queue", "delete", seeded.held, input="y\n")
    assert (code, output.splitlines()[-1]) == (0, f"Message {seeded.held} deleted.")
    code, output = run(seeded.data_dir, "queue", "delete", seeded.queued, "--yes")
    assert (code, output) == (0, f"Message {seeded.queued} deleted.\n")
    assert set(states(seeded)) == {seeded.deferred, seeded.delivered}
    remaining = {p.name for p in (seeded.data_dir / "spool").rglob("*") if p.is_file()}
    assert len(spool_files) - len(remaining) == 2  # both spool files went with their rows


def test_flush_makes_deferred_due_but_leaves_held(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "queue", "flush")
    assert (code, output) == (0, "1 deferred message is due now.\n")
    found = states(seeded)
    assert (found[seeded.deferred], found[seeded.held]) == ("queued", "held")
    assert run(seeded.data_dir, "queue", "flush")[1] == "0 deferred messages are due now.\n"


def test_delete_prompt_keeps_no_lock(seeded: Seeded) -> None:
    """While ``delete`` waits for its answer, another process can write to the SQLite database at once."""
    tests_dir = Path(__file__).parent
    code = f"import sys; sys.path.insert(0, {str(tests_dir)!r}); from test_cli_queue import cli; cli()()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--data-dir", str(seeded.data_dir), "queue", "delete", seeded.queued],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        seen = b""
        deadline = time.monotonic() + 30
        while b"[y/N]" not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select_module.select([process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                assert chunk, seen  # the process ended without asking
                seen += chunk
        writer = sqlite3.connect(seeded.data_dir / "coldrelay.db", timeout=0.05)  # no waiting for a lock
        with writer:
            writer.execute("UPDATE queued_messages SET tries = tries + 1 WHERE id = ?", (seeded.deferred,))
        writer.close()
        output, _ = process.communicate(b"y\n", timeout=30)
        assert process.returncode == 0, seen + output
        assert f"Message {seeded.queued} deleted.".encode() in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- senders ---------------------------------------------------------------------------------------------


def test_pause_list_resume(seeded: Seeded) -> None:
    data_dir = seeded.data_dir
    assert run(data_dir, "senders", "list") == (0, "No sender is paused.\n")
    code, output = run(data_dir, "senders", "pause", "Anna@Sender.test", "--reason", "list looks stale", "--by", "lena")
    assert (code, output) == (0, "Mailbox anna@sender.test paused: Paused by lena: list looks stale\n")
    code, output = run(data_dir, "senders", "pause", "anna@sender.test", "--reason", "again")
    assert code == 1
    assert "anna@sender.test is already paused since" in output
    assert run(data_dir, "senders", "pause", "sender.test", "--reason", "DNS move")[0] == 0
    code, output = run(data_dir, "senders", "list")
    assert code == 0, output
    assert "2 pauses in force" in output
    assert re.search(
        r"mailbox\s+│ anna@sender\.test\s+│ manual\s+│ \d{4}-\d\d-\d\d \d\d:\d\d\s+│ Paused by lena: list looks stale", output
    )
    code, output = run(data_dir, "senders", "resume", "anna@sender.test", "--by", "lena")
    assert (code, output) == (0, "anna@sender.test resumed; its queued messages go out on their next attempt.\n")
    assert run(data_dir, "senders", "resume", "anna@sender.test") == (1, "anna@sender.test is not paused.\n")
    listed = json.loads(run(data_dir, "senders", "list", "--json")[1])
    assert [(p["scope"], p["name"]) for p in listed] == [("domain", "sender.test")]
    history = json.loads(run(data_dir, "senders", "list", "--all", "--json")[1])
    assert [(p["name"], p["resumed_by"]) for p in history] == [("sender.test", None), ("anna@sender.test", "lena")]
    code, output = run(data_dir, "senders", "list", "--all")
    assert re.search(r"anna@sender\.test\s+│ manual .*│ \d{4}-\d\d-\d\d \d\d:\d\d\s+│ lena", output), output


@pytest.mark.parametrize("command", [("pause", "--reason", "x"), ("resume",), ("show",)])
def test_senders_refuse_names_that_are_not_senders(seeded: Seeded, command: tuple[str, ...]) -> None:
    code, output = run(seeded.data_dir, "senders", command[0], "not a sender", *command[1:])
    assert (code, output) == (2, "'not a sender' is neither a mailbox address nor a domain name\n")


def test_pause_needs_a_reason(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "senders", "pause", "anna@sender.test", "--reason", "  ")
    assert code == 2
    assert "a manual pause needs a reason" in output


def test_show_standing(seeded: Seeded) -> None:
    code, output = run(seeded.data_dir, "senders", "show", "anna@sender.test", "--json")
    assert code == 0, output
    mailbox, domain = json.loads(output)
    # One bounced send (hard) and one deferred row (not a send) so far.
    assert (mailbox["name"], mailbox["sends"], mailbox["hard_bounces"], mailbox["rate"], mailbox["paused"]) == (
        "anna@sender.test",
        1,
        1,
        1.0,
        None,
    )
    assert (domain["scope"], domain["name"], domain["sends"]) == ("domain", "sender.test", 1)
    code, output = run(seeded.data_dir, "senders", "show", "anna@sender.test")
    assert "Hard bounces over the last 100 sends" in output
    assert "A sender pauses above 5.0% hard bounces with at least 20 sends; only sends after its latest resume count." in output
    assert re.search(r"mailbox\s+│ anna@sender\.test\s+│ 1\s+│ 1\s+│ 100\.0%\s+│ no", output), output
