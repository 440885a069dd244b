"""parse_path and the CLI on the shapes mail arrives in: .eml, mbox, Maildir, trees, stdin."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldrelay.bounces import parse, parse_path
from coldrelay.cli.main import app

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces" / "maildir" / "bsd"
SOME = [CORPUS / name for name in ("lhost-postfix-03.eml", "lhost-exim-07.eml", "lhost-sendmail-13.eml", "rfc3464-26.eml")]
runner = CliRunner()


def _expected(paths: list[Path]) -> list[str]:
    return [record.recipient for path in paths for record in parse(path.read_bytes())]


@pytest.fixture
def mbox_file(tmp_path: Path) -> Path:
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    for sample in SOME:
        box.add(sample.read_bytes())
    box.flush()
    box.close()
    return path


def test_eml_file() -> None:
    assert [r.recipient for r in parse_path(SOME[0])] == _expected(SOME[:1])


def test_mbox_with_several_messages(mbox_file: Path) -> None:
    assert [r.recipient for r in parse_path(mbox_file)] == _expected(SOME)


def test_maildir(tmp_path: Path) -> None:
    box = mailbox.Maildir(str(tmp_path / "Maildir"))
    for sample in SOME:
        box.add(sample.read_bytes())
    assert sorted(r.recipient for r in parse_path(tmp_path / "Maildir")) == sorted(_expected(SOME))


def test_directory_tree(tmp_path: Path) -> None:
    for index, sample in enumerate(SOME):
        folder = tmp_path / f"level{index % 2}" / "deeper"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / sample.name).write_bytes(sample.read_bytes())
    assert sorted(r.recipient for r in parse_path(tmp_path)) == sorted(_expected(SOME))


def test_cli_csv_one_row_per_record(mbox_file: Path) -> None:
    result = runner.invoke(app, ["bounce", "parse", str(mbox_file), "--format", "csv", "--no-summary"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["recipient"] for row in rows] == _expected(SOME)
    assert {"recipient", "reason", "status", "diagnostic", "hard_bounce", "mta"} <= set(rows[0])


def test_cli_jsonl_with_workers(mbox_file: Path) -> None:
    result = runner.invoke(app, ["bounce", "parse", str(mbox_file), "--format", "jsonl", "--workers", "2", "--no-summary"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["recipient"] for line in result.stdout.splitlines()] == _expected(SOME)


def test_cli_stdin_and_summary() -> None:
    result = runner.invoke(app, ["bounce", "parse", "-", "--format", "json"], input=SOME[0].read_bytes())
    assert result.exit_code == 0, result.output
    assert "by reason" in result.stderr
    assert json.loads(result.stdout)[0]["recipient"] == _expected(SOME[:1])[0]


def test_cli_missing_path() -> None:
    result = runner.invoke(app, ["bounce", "parse", "/nonexistent/box.mbox"])
    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr
