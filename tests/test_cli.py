"""The command line, run through Typer's runner exactly as a user types it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coldrelay.cli.main import app

runner = CliRunner()


def test_explain_unable_to_relay() -> None:
    result = runner.invoke(app, ["explain", "550 5.7.1 Unable to relay"])
    assert result.exit_code == 0, result.output
    assert "Microsoft" in result.output
    assert "norelaying" in result.output
    assert "sender" in result.output
    assert "How to fix it" in result.output
    assert "1." in result.output


def test_explain_json_with_remote_host() -> None:
    result = runner.invoke(app, ["explain", "550 5.1.1 User unknown", "--remote-host", "gmail-smtp-in.l.google.com", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["provider"] == "google"
    assert data["reason"] == "userunknown"
    assert data["hard_bounce"] is True


def test_explain_reads_stdin() -> None:
    result = runner.invoke(
        app, ["explain", "-", "--json"], input="421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["provider"] == "yahoo"


def test_explain_empty_text_is_a_clear_error() -> None:
    result = runner.invoke(app, ["explain", "  "])
    assert result.exit_code == 2
    assert "Give the reply text" in result.output
    assert "Traceback" not in result.output


def test_errors_list_by_provider() -> None:
    result = runner.invoke(app, ["errors", "list", "--provider", "google", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert len(entries) >= 30
    assert {entry["provider"] for entry in entries} == {"google"}


def test_errors_list_unknown_provider() -> None:
    result = runner.invoke(app, ["errors", "list", "--provider", "nosuchmail"])
    assert result.exit_code == 1
    assert "No entries for provider" in result.output


def test_errors_show() -> None:
    result = runner.invoke(app, ["errors", "show", "microsoft-550-5-7-1-unable-to-relay"])
    assert result.exit_code == 0, result.output
    for heading in ("What it means", "How to fix it", "FAQ", "References", "Related errors"):
        assert heading in result.output


def test_errors_show_unknown_slug_suggests() -> None:
    result = runner.invoke(app, ["errors", "show", "unable-relay"])
    assert result.exit_code == 1
    assert "No entry" in result.output
