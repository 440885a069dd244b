"""``coldrelay domain`` and ``coldrelay mailbox`` as a user types them, with ``--data-dir`` in tmp_path."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldrelay.cli.main import app
from coldrelay.db import create_engine, list_domains, session_factory, verify_password

runner = CliRunner()
PASSWORD = "correct horse battery"


def run(data_dir: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], input=input, env=env)
    # Errors end in SystemExit with the code, never in an unhandled exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def hosted(data_dir: Path) -> Path:
    code, output = run(data_dir, "domain", "add", "example.com")
    assert code == 0, output
    return data_dir


def test_domain_add_prints_selector_and_dkim_record(data_dir: Path) -> None:
    code, output = run(data_dir, "domain", "add", "Example.COM")
    assert code == 0, output
    assert "DKIM selector: s1" in output
    assert "s1._domainkey.example.com" in output
    match = re.search(r"^v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)$", output, re.MULTILINE)
    assert match, output
    assert len(base64.b64decode(match.group(1))) == 294  # DER SubjectPublicKeyInfo of an RSA-2048 key
    assert 's1._domainkey.example.com. 3600 IN TXT ( "v=DKIM1; k=rsa; p=' in output
    assert "Domain example.com added" in output
    # The data directory was made on first use, private, with the database in it.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert (data_dir / "coldrelay.db").is_file()
    engine = create_engine(f"sqlite:///{data_dir}/coldrelay.db")
    with session_factory(engine)() as session:
        [domain] = list_domains(session)
        assert domain.dkim_keys[0].public_key_b64 == match.group(1)
    engine.dispose()


def test_selector_comes_from_coldrelay_toml(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "coldrelay.toml").write_text('[dkim]\nselector = "mail"\n')
    code, output = run(data_dir, "domain", "add", "example.com")
    assert code == 0, output
    assert "DKIM selector: mail" in output
    assert "mail._domainkey.example.com" in output


def test_duplicate_domain(hosted: Path) -> None:
    code, output = run(hosted, "domain", "add", "EXAMPLE.com")
    assert code == 1
    assert "The domain example.com is already hosted here." in output


@pytest.mark.parametrize("name", ["not a domain", "localhost", "exa_mple.com", "192.0.2.1"])
def test_invalid_domain(data_dir: Path, name: str) -> None:
    code, output = run(data_dir, "domain", "add", name)
    assert code == 2
    assert "not a valid domain name" in output or "IP address" in output


def test_domain_list(hosted: Path) -> None:
    run(hosted, "domain", "add", "example.org")
    run(hosted, "mailbox", "add", "anna@example.com", "--password", PASSWORD)
    code, output = run(hosted, "domain", "list")
    assert code == 0, output
    assert "2 hosted domains" in output
    assert re.search(r"example\.com\s+│ s1 \(rsa\)\s+│ 1 ", output), output
    assert re.search(r"example\.org\s+│ s1 \(rsa\)\s+│ 0 ", output), output


def test_empty_lists(data_dir: Path) -> None:
    assert run(data_dir, "domain", "list") == (0, "No domains yet. Add one with: coldrelay domain add example.com\n")
    code, output = run(data_dir, "mailbox", "list")
    assert code == 0
    assert "No mailboxes yet" in output


def test_mailbox_add_and_list(hosted: Path) -> None:
    code, output = run(
        hosted, "mailbox", "add", "Anna@Example.com", "--password", PASSWORD, "--name", "Anna Berg", "--daily-limit", "20"
    )
    assert code == 0, output
    assert "Mailbox anna@example.com added, daily cap 20 messages/day." in output
    code, output = run(hosted, "mailbox", "add", "bob@example.com", "--password", PASSWORD)
    assert code == 0, output
    assert "daily cap 50 messages/day (the default)" in output
    code, output = run(hosted, "mailbox", "list")
    assert code == 0, output
    assert re.search(r"anna@example\.com\s+│ Anna Berg\s+│ 20\s+│ yes", output), output
    assert re.search(r"bob@example\.com\s+│\s+│ 50 \(default\)\s+│ yes", output), output
    code, output = run(hosted, "mailbox", "list", "--domain", "example.org")
    assert "No mailboxes yet" in output
    engine = create_engine(f"sqlite:///{hosted}/coldrelay.db")
    with session_factory(engine)() as session:
        mailbox = verify_password(session, "anna@example.com", PASSWORD)
        assert mailbox is not None
        assert mailbox.display_name == "Anna Berg"
        assert verify_password(session, "anna@example.com", "wrong password") is None
    engine.dispose()


def test_default_cap_follows_the_config(hosted: Path) -> None:
    (hosted / "coldrelay.toml").write_text("[limits]\ndaily_cap = 30\n")
    code, output = run(hosted, "mailbox", "add", "anna@example.com", "--password", PASSWORD)
    assert code == 0, output
    assert "daily cap 30 messages/day (the default)" in output


def test_password_is_prompted_when_not_given(hosted: Path) -> None:
    code, output = run(hosted, "mailbox", "add", "anna@example.com", "--ask-password", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, output
    assert PASSWORD not in output
    assert "Mailbox anna@example.com added" in output
    engine = create_engine(f"sqlite:///{hosted}/coldrelay.db")
    with session_factory(engine)() as session:
        assert verify_password(session, "anna@example.com", PASSWORD) is not None
    engine.dispose()


def test_mailbox_for_unknown_domain(hosted: Path) -> None:
    code, output = run(hosted, "mailbox", "add", "anna@elsewhere.example", "--password", PASSWORD)
    assert code == 1
    assert "The domain elsewhere.example is not hosted here; add it first with: coldrelay domain add elsewhere.example" in output


def test_duplicate_mailbox(hosted: Path) -> None:
    assert run(hosted, "mailbox", "add", "anna@example.com", "--password", PASSWORD)[0] == 0
    code, output = run(hosted, "mailbox", "add", "ANNA@example.com", "--password", PASSWORD)
    assert code == 1
    assert "The mailbox anna@example.com already exists." in output


@pytest.mark.parametrize("address", ["anna", "anna@@example.com", "an%na@example.com", "anna@[192.0.2.1]"])
def test_bad_address(hosted: Path, address: str) -> None:
    code, output = run(hosted, "mailbox", "add", address, "--password", PASSWORD)
    assert code == 2
    assert address in output


def test_short_password_and_bad_limit(hosted: Path) -> None:
    code, output = run(hosted, "mailbox", "add", "anna@example.com", "--password", "short")
    assert code == 2
    assert "at least 8 characters" in output
    code, output = run(hosted, "mailbox", "add", "anna@example.com", "--password", PASSWORD, "--daily-limit", "-1")
    assert code == 2
    code, output = run(hosted, "mailbox", "list")
    assert "No mailboxes yet" in output


def test_broken_config_is_a_clear_error(hosted: Path) -> None:
    (hosted / "coldrelay.toml").write_text("[limits]\ndaily_cap = 'many'\n")
    code, output = run(hosted, "mailbox", "add", "anna@example.com", "--password", PASSWORD)
    assert code == 2
    assert f"Configuration error: {hosted / 'coldrelay.toml'}: key 'limits.daily_cap': expected a positive integer" in output
    (hosted / "coldrelay.toml").write_text("[limits\n")
    code, output = run(hosted, "domain", "list")
    assert code == 2
    assert "not valid TOML" in output


def test_bad_database_url_is_a_clear_error(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "coldrelay.toml").write_text('database_url = "mysql://root@localhost/coldrelay"\n')
    code, output = run(data_dir, "domain", "list")
    assert code == 2
    assert "unsupported database 'mysql'" in output


def test_unreachable_database_is_a_clear_error(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "coldrelay.toml").write_text('database_url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"\n')
    code, output = run(data_dir, "domain", "list")
    assert code == 1
    assert "Database error (postgresql+psycopg://nobody@127.0.0.1:1/none" in output


def test_other_commands_ignore_a_broken_config(hosted: Path) -> None:
    (hosted / "coldrelay.toml").write_text("this is not toml\n")
    code, output = run(hosted, "explain", "550 5.1.1 User unknown")
    assert code == 0, output


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    env_dir = tmp_path / "from-env"
    result = runner.invoke(app, ["domain", "add", "example.com"], env={"COLDRELAY_DATA_DIR": str(env_dir)})
    assert result.exit_code == 0, result.output
    assert (env_dir / "coldrelay.db").is_file()


def test_flag_wins_over_the_environment(tmp_path: Path) -> None:
    flag_dir, env_dir = tmp_path / "flag", tmp_path / "env"
    code, output = run(flag_dir, "domain", "add", "example.com", env={"COLDRELAY_DATA_DIR": str(env_dir)})
    assert code == 0, output
    assert (flag_dir / "coldrelay.db").is_file()
    assert not env_dir.exists()


def test_default_data_dir_is_under_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLDRELAY_DATA_DIR", raising=False)
    result = runner.invoke(app, ["domain", "add", "example.com"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "coldrelay.db").is_file()
