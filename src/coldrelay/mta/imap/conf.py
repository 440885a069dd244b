"""The private Dovecot instance's files and configuration, all under ``<data-dir>/dovecot/``.

Dovecot is started with ``-c`` on the file written here and never reads ``/etc/dovecot``: its
``base_dir`` (sockets, pid file), ``state_dir`` and log live in the data directory, so it cannot
clash with a system Dovecot, and a data directory is a self-contained mail host.

Who runs what (``RunAs``):

* as a normal user (dev machines) every Dovecot process runs as that user, which also owns the
  mail: the internal and login users are set to it and the chroots, which need root, are off;
* as root (CI, a plain server install) the login processes run as Debian's ``dovenull`` and the
  internal ones as ``dovecot``, chrooted as Dovecot intends. ``auth`` stays root, because the
  password file sits in the owner-only (0700) data directory. Dovecot never opens mail as root, so
  the mail processes run as Debian's ``mail`` user, chrooted into ``<data-dir>/mail`` (the chroot is
  entered as root, so the 0700 data directory above it needs no opening); the Maildirs must then
  belong to ``mail``, which ``mailstore.py`` sees to.

Mail is where ``mta.store.maildir`` writes it: home ``<data-dir>/mail/<domain>/<local>``, mail
``maildir:~/Maildir``; Dovecot adds its index files and the ``.Sent``-style folders beside
``cur``/``new``/``tmp``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from coldrelay.config import ListenAddress
from coldrelay.mta.imap.errors import ImapUnavailable

DOVECOT_DIR_NAME = "dovecot"
ROOT_MAIL_USER = "mail"  # owns the Maildirs when coldrelay runs as root (Dovecot refuses uid 0 for mail)
DEBIAN_DH_PARAMS = Path("/usr/share/dovecot/dh.pem")
# A Unix socket path has at most 107 bytes; Dovecot's longest socket name under base_dir is ~25.
MAX_BASE_DIR_LENGTH = 80
SPECIAL_FOLDERS = (("Drafts", r"\Drafts"), ("Sent", r"\Sent"), ("Junk", r"\Junk"), ("Trash", r"\Trash"))
# Paths are written into dovecot.conf unquoted and some are %-expanded: refuse anything else.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")


@dataclass(frozen=True, slots=True)
class DovecotLayout:
    """Where the private instance keeps its files, derived from the data directory."""

    data_dir: Path

    @property
    def root(self) -> Path:
        return self.data_dir / DOVECOT_DIR_NAME

    @property
    def config_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def base_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def passdb_file(self) -> Path:
        return self.root / "passwd"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "master.pid"

    @property
    def mail_root(self) -> Path:
        return self.data_dir / "mail"


@dataclass(frozen=True, slots=True)
class RunAs:
    """The users Dovecot's processes run as, and the owner of the mail (``mail_uid``/``mail_gid``)."""

    as_root: bool
    login_user: str
    internal_user: str
    internal_group: str
    mail_uid: int
    mail_gid: int


def current_run_as() -> RunAs:
    """This process's user for everything; as root, Debian's users for the parts that may not be root.

    Dovecot never opens mail as root ("Mail access not allowed for root"), so under root the mail
    belongs to ``ROOT_MAIL_USER`` (Debian's ``mail`` account, present on every Debian system).
    """
    if os.geteuid() == 0:
        users: dict[str, pwd.struct_passwd] = {}
        for name in ("dovenull", "dovecot", ROOT_MAIL_USER):
            try:
                users[name] = pwd.getpwnam(name)
            except KeyError:
                raise ImapUnavailable(
                    f"the system user {name!r} is missing; Dovecot under root needs dovenull and dovecot "
                    f"(reinstall dovecot-core) and {ROOT_MAIL_USER!r} (Debian's base-passwd)"
                ) from None
        mail = users[ROOT_MAIL_USER]
        return RunAs(True, "dovenull", "dovecot", "dovecot", mail_uid=mail.pw_uid, mail_gid=mail.pw_gid)
    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        raise ImapUnavailable(f"user id {uid} or group id {gid} has no name; Dovecot needs named ones") from None
    return RunAs(False, user, user, group, mail_uid=uid, mail_gid=gid)


def _path(path: Path) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ImapUnavailable(
            f"Dovecot cannot use the path {text!r}: use a data directory and certificate paths made of "
            "letters, digits and . _ / @ + - only"
        )
    return text


def _host(host: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:*-]+", host):
        raise ImapUnavailable(f"Dovecot cannot listen on {host!r}: give an IP address or host name")
    return host


def render_config(
    layout: DovecotLayout, listen: ListenAddress, run_as: RunAs, *, cert_file: Path, key_file: Path, dh_file: Path | None
) -> str:
    """The complete ``dovecot.conf`` of the private instance."""
    base_dir = _path(layout.base_dir)
    if len(base_dir) > MAX_BASE_DIR_LENGTH:
        raise ImapUnavailable(
            f"the data directory path is too long for Dovecot's sockets ({base_dir} is over {MAX_BASE_DIR_LENGTH} "
            "characters): use a shorter --data-dir"
        )
    mail_root = _path(layout.mail_root)
    if run_as.as_root:
        # Root: the login and internal helpers keep Dovecot's chroots; auth stays root to read the
        # password file in the owner-only data directory; mail processes are chrooted into the mail
        # root (done as root, so the 0700 data directory above it needs no opening for the mail user).
        no_chroot = ""
        services = "service auth {\n  user = root\n}\n"
        mail_lines = f"mail_chroot = {mail_root}\nvalid_chroot_dirs = {mail_root}\n"
        home = "/%d/%n"
    else:
        # A normal user cannot chroot or change user: every service runs as this user, unchrooted.
        no_chroot = "  chroot =\n"
        services = "service auth-worker {\n  user = $default_internal_user\n}\n" + "".join(
            f"service {name} {{\n{no_chroot}}}\n" for name in ("anvil", "ipc")
        )
        mail_lines = ""
        home = f"{mail_root}/%d/%n"
    folders = "".join(
        f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}\n" for name, use in SPECIAL_FOLDERS
    )
    dh_line = f"ssl_dh = <{_path(dh_file)}\n" if dh_file is not None else ""
    return f"""\
# Written by coldrelay at every start (mta/imap/conf.py); edits are overwritten.
instance_name = coldrelay
base_dir = {base_dir}
state_dir = {_path(layout.state_dir)}
log_path = {_path(layout.log_file)}
protocols = imap
listen = {_host(listen.host)}
login_greeting = coldrelay IMAP ready.

default_internal_user = {run_as.internal_user}
default_internal_group = {run_as.internal_group}
default_login_user = {run_as.login_user}
first_valid_uid = {run_as.mail_uid}
last_valid_uid = {run_as.mail_uid}
first_valid_gid = {run_as.mail_gid}
last_valid_gid = {run_as.mail_gid}

ssl = required
ssl_cert = <{_path(cert_file)}
ssl_key = <{_path(key_file)}
ssl_min_protocol = TLSv1.2
{dh_line}disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Lu
auth_verbose = yes

passdb {{
  driver = passwd-file
  args = {_path(layout.passdb_file)}
}}
userdb {{
  driver = static
  args = uid={run_as.mail_uid} gid={run_as.mail_gid} home={home}
}}
mail_location = maildir:~/Maildir
{mail_lines}
namespace inbox {{
  inbox = yes
  separator = /
{folders}}}

service imap-login {{
{no_chroot}  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {listen.port}
    ssl = yes
  }}
}}
{services}"""
