"""Messages a second accepted over SMTP by coldrelay's MX and by Postfix, on loopback, in one run.

Set-up (once, as root): ``DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`` for Postfix
and its test client ``smtp-source``. The system Postfix service is not used and stays stopped
(``postfix stop`` if the package started it); this script runs a private instance. Then, as root:

    .venv/bin/python bench/smtp_accept.py [--messages 2000] [--sessions 20] [--size 1024] [--rounds 3]

Both servers get the same load from ``smtp-source -s SESSIONS -m MESSAGES -l SIZE``: small messages
from ``sender@inbound.test`` to ``anna@hosted.test``, a new connection per message. Each gets one
warm-up round, then the timed rounds (wall clock of smtp-source); every message must get its 250.

- coldrelay: ``coldrelay serve`` on a temporary data directory, web, MX and submission on free
  127.0.0.1 ports, the domain and mailbox made with the CLI. The MX checks SPF, DKIM and DMARC
  against the test suite's loopback DNS server (tests/zones; SPF passes for 127.0.0.1) and stores
  each message in the Maildir before its 250.
- Postfix: a private instance in a temporary directory (its own main.cf, master.cf, queue and
  data directories, no chroot), smtpd on a free 127.0.0.1 port, ``hosted.test`` a virtual mailbox
  domain delivered to a Maildir; outbound transports are ``error``, so nothing leaves the machine.

Afterwards both Maildirs are counted. Prints messages/s for both and the ratio. Everything binds
127.0.0.1 only; both servers are stopped and the temporary directory removed on exit, Ctrl-C or
error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dns_server import LoopbackDNS  # noqa: E402

COLDRELAY = Path(sys.executable).with_name("coldrelay")
SENDER = "sender@inbound.test"  # tests/zones/inbound.zone: SPF allows 127.0.0.1, DMARC p=reject
RECIPIENT = "anna@hosted.test"
POSTFIX_MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_smtp(port: int, what: str, process: subprocess.Popen[str] | None = None, timeout: float = 30) -> None:
    """Until the server on 127.0.0.1:port greets with 220."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port}")
        time.sleep(0.2)


def maildir_count(root: Path) -> int:
    return sum(1 for path in root.rglob("Maildir/new/*") if path.is_file())


def run(*command: str, timeout: float = 60) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout


def smtp_source(port: int, messages: int, sessions: int, size: int) -> float:
    """Send `messages` messages with smtp-source; the wall-clock seconds it took."""
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    command += ["-M", "client.bench.test", "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]
    started = time.perf_counter()
    run(*command, timeout=max(120, messages))
    return time.perf_counter() - started


@contextlib.contextmanager
def coldrelay(base: Path, nameserver: str) -> Iterator[tuple[int, Path]]:
    """`coldrelay serve` on free loopback ports with anna@hosted.test; yields the MX port and the data dir."""
    data = base / "coldrelay"
    data.mkdir(mode=0o700)
    web, mx, submission, submissions = free_port(), free_port(), free_port(), free_port()
    (data / "coldrelay.toml").write_text(
        f'hostname = "box.hosted.test"\n[web]\nlisten = "127.0.0.1:{web}"\n[smtp]\nmx_listen = "127.0.0.1:{mx}"\n'
        f'submission_listen = "127.0.0.1:{submission}"\nsubmissions_listen = "127.0.0.1:{submissions}"\n',
        encoding="utf-8",
    )
    run(str(COLDRELAY), "--data-dir", str(data), "domain", "add", "hosted.test")
    run(str(COLDRELAY), "--data-dir", str(data), "mailbox", "add", RECIPIENT, "--password", "bench password, long enough")
    log = (base / "coldrelay-serve.log").open("w")
    process = subprocess.Popen(
        [str(COLDRELAY), "--data-dir", str(data), "serve", "--nameserver", nameserver],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the bench only; the finally below stops serve
    )
    try:
        wait_for_smtp(mx, "coldrelay serve", process)
        yield mx, data
    except RuntimeError:
        log.flush()
        tail = (base / "coldrelay-serve.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        print(f"coldrelay serve said:\n{tail}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def postfix(base: Path) -> Iterator[tuple[int, Path]]:
    """A private Postfix on a free loopback port, anna@hosted.test a virtual Maildir; yields the port and mail root."""
    root = base / "postfix"
    etc, queue, data, mail = root / "etc", root / "queue", root / "data", root / "mail"
    for directory in (root, etc, queue, data, mail):
        directory.mkdir(mode=0o755)
    owner, nobody = pwd.getpwnam("postfix"), pwd.getpwnam("nobody")
    os.chown(data, owner.pw_uid, owner.pw_gid)
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    port = free_port()
    (etc / "vmailbox").write_text(f"{RECIPIENT} hosted.test/anna/Maildir/\n", encoding="utf-8")
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(queue),
        "data_directory": str(data),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "box.postfix.test",
        "mydomain": "postfix.test",
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "",  # the client is a stranger, as on an MX: only hosted.test is accepted
        "relay_domains": "",
        "virtual_mailbox_domains": "hosted.test",
        "virtual_mailbox_base": str(mail),
        "virtual_mailbox_maps": f"texthash:{etc / 'vmailbox'}",
        "virtual_uid_maps": f"static:{nobody.pw_uid}",
        "virtual_gid_maps": f"static:{nobody.pw_gid}",
        "default_transport": "error:outbound mail is off in the bench",
        "relay_transport": "error:outbound mail is off in the bench",
        "local_transport": "error:no local delivery in the bench",
        "alias_maps": "",
        "alias_database": "",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "biff": "no",
    }
    (etc / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()), encoding="utf-8")
    (etc / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=f"127.0.0.1:{port}"), encoding="utf-8")
    started = False
    try:
        run("postfix", "-c", str(etc), "start")
        started = True
        wait_for_smtp(port, "postfix")
        yield port, mail
    finally:
        if started or (queue / "pid" / "master.pid").exists():
            stop_postfix(etc, queue)


def stop_postfix(etc: Path, queue: Path) -> None:
    with contextlib.suppress(Exception):
        run("postfix", "-c", str(etc), "stop")
    pid_file = queue / "pid" / "master.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().split()[0])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises once the master has exited
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def postfix_queue_empty(queue_root: Path) -> bool:
    return not any(path.is_file() for sub in ("incoming", "active", "deferred") for path in (queue_root / sub).rglob("*"))


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def measure(name: str, port: int, args: argparse.Namespace, settle: Callable[[], bool] | None = None) -> float:
    """A warm-up round, then the timed rounds; messages/s over all timed rounds."""
    smtp_source(port, max(args.sessions * 5, args.messages // 10), args.sessions, args.size)
    if settle is not None:
        wait_until(settle, 60)
    elapsed = 0.0
    for round_number in range(args.rounds):
        seconds = smtp_source(port, args.messages, args.sessions, args.size)
        elapsed += seconds
        print(f"  {name} round {round_number + 1}: {args.messages / seconds:8,.0f} messages/s", flush=True)
        if settle is not None:
            wait_until(settle, 60)  # Postfix delivers after its 250: let the queue drain between rounds
    return float(args.messages * args.rounds / elapsed)


def interrupt(signum: int, _frame: object) -> None:
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per timed round")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions (smtp-source -s)")
    parser.add_argument("--size", type=int, default=1024, help="body bytes per message (smtp-source -l)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    missing = [tool for tool in ("smtp-source", "postfix") if shutil.which(tool) is None]
    if missing:
        print(f"{', '.join(missing)} not found: apt-get install postfix", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run as root: a private Postfix instance needs it", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # clean up however it is stopped
        signal.signal(signum, interrupt)
    base = Path(tempfile.mkdtemp(prefix="coldrelay-bench-smtp-"))
    base.chmod(0o755)  # Postfix's daemons and virtual(8), running as postfix and nobody, walk into it
    dns = LoopbackDNS()
    try:
        dns.start()
        expected = max(args.sessions * 5, args.messages // 10) + args.messages * args.rounds
        print(f"{args.messages} messages x {args.rounds} rounds, {args.sessions} sessions, {args.size}-byte bodies")
        with coldrelay(base, dns.address) as (port, data):
            ours = measure("coldrelay", port, args)
            ours_stored = maildir_count(data)
        with postfix(base) as (port, mail):
            queue = base / "postfix" / "queue"
            theirs = measure("postfix  ", port, args, settle=lambda: postfix_queue_empty(queue))
            theirs_stored = maildir_count(mail)
        print(f"coldrelay: {ours:10,.0f} messages/s   ({ours_stored} of {expected} in the Maildir)")
        print(f"postfix:   {theirs:10,.0f} messages/s   ({theirs_stored} of {expected} in the Maildir)")
        print(f"ratio:     {ours / theirs:10.2f}x  (floor 0.3x, aim 1x)")
        return 0 if ours_stored == theirs_stored == expected else 1
    except RuntimeError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopping both servers", file=sys.stderr)
        return 130
    finally:
        dns.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
