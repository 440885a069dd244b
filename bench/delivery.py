"""Messages a second delivered from a full queue into one loopback smtp-sink, by coldrelay and by Postfix, in one run.

Set-up (once, as root): ``DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`` brings Postfix
and its test server ``smtp-sink``; the system Postfix service is not used (this script runs a
private instance, as bench/smtp_accept.py does). Then, as root:

    .venv/bin/python bench/delivery.py [--messages 2000] [--concurrency 20] [--rounds 3]
                                       [--database-url postgresql+psycopg://...] [--keep]

What is measured is the outbound half of a mail host: how fast a queue that is already full empties
into a receiver that takes everything at once. Both sides deliver into the same ``smtp-sink`` on a
free 127.0.0.1 port, which answers 250 to every command; its ``-c`` counters tell how many messages
it took, and since the sides run one after the other, the counter's rise during a round is that
round's count. Each side gets one untimed warm-up round of N/10 messages, then R timed rounds of N
messages; the best round counts. Every message is the same ~1 KB from alice@send.test, each to
its own recipient rN@sink.test.

- coldrelay: a temporary data directory and coldrelay.toml (``[transports]`` sends sink.test to the
  sink, ``[delivery] concurrency``, and generous ``[destinations.default]`` limits, so politeness
  towards a real receiver does not throttle the bench), the real ``DeliveryService`` in this process
  over a real ``MailQueue`` (SQLite in the data directory, or a schema of our own in
  ``--database-url``'s PostgreSQL database, dropped afterwards). The queue is filled with
  ``MailQueue.enqueue`` before the clock starts; the clock runs from ``DeliveryService.start()``
  until the database says every row is delivered. Its resolver points at the test suite's loopback
  DNS server: the transport skips DNS, and nothing may ask the internet if something did not.
- Postfix: a private instance (main.cf and master.cf in the temporary directory, no chroot) that
  relays everything to ``[127.0.0.1]:SINK`` over its ``smtp`` transport, without DNS, with its
  destination concurrency set to coldrelay's and connection caching as by default. The messages are
  submitted over SMTP while ``defer_transports = smtp`` holds delivery (and a restart between
  rounds re-arms the hold). The release is ``defer_transports =`` and ``postfix reload`` (untimed:
  the reload alone takes ~2 s of script checks, and nothing moves until the flush), then the clock
  runs from ``postqueue -f`` until the queue directories are empty and the sink has every message.

Prints a table (side, messages, seconds, messages/s; Postfix also with its reload counted) and the
ratio coldrelay/Postfix against the issue's floor (0.3x; the aim is 1x). Everything binds 127.0.0.1; the sink, Postfix and the DNS
server are stopped, the PostgreSQL schema dropped and the temporary directory removed (unless
``--keep``) on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH))

from sqlalchemy import Engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from coldrelay.config import Settings, load_settings  # noqa: E402
from coldrelay.db import MessageState, QueuedMessage, create_engine, upgrade_database  # noqa: E402
from coldrelay.dns import Resolver  # noqa: E402
from coldrelay.mta.delivery.service import DeliveryService  # noqa: E402
from coldrelay.mta.queue import MailQueue  # noqa: E402
from dns_server import LoopbackDNS  # noqa: E402
from smtp_accept import (  # noqa: E402
    POSTFIX_MASTER_CF,
    free_port,
    interrupt,
    postfix_queue_empty,
    run,
    stop_postfix,
    wait_for_smtp,
    wait_until,
)

SENDER = "alice@send.test"
SINK_DOMAIN = "sink.test"
MESSAGE_SIZE = 1024
FLOOR, AIM = 0.3, 1.0
POLL_SECONDS = 0.02  # how often the end of a round is looked for: small against rounds of seconds
SUBMITTERS = 8  # SMTP connections filling Postfix's queue (untimed)
# Limits for [destinations.default], the destination the sink at 127.0.0.1 falls under: far above
# what the bench reaches, so only the engine itself sets the pace (a real receiver gets the defaults).
MESSAGES_PER_MINUTE = 6_000_000
MESSAGES_PER_CONNECTION = 100_000
RELOAD_SETTLE = 1.0  # seconds after ``postfix reload`` before the flush (untimed)
SMTP_TRANSPORT = "smtp      unix  -       -       n       -       -       smtp\n"


@dataclass(frozen=True, slots=True)
class Round:
    """One round of one side: ``seconds`` of delivery, plus ``release`` seconds of untimed set-up that
    a person releasing a held queue would also wait for (Postfix's ``postfix reload``)."""

    label: str
    messages: int
    seconds: float
    release: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def rate_with_release(self) -> float:
        return self.messages / (self.seconds + self.release)


def message(number: int) -> bytes:
    """The same ~1 KB plain-text message for both sides, addressed to r<number>@sink.test."""
    head = (
        f"From: Alice <{SENDER}>\r\nTo: <r{number}@{SINK_DOMAIN}>\r\nSubject: Delivery bench {number}\r\n"
        f"Date: {formatdate(localtime=False)}\r\nMessage-ID: <bench-{number}-{uuid.uuid4().hex[:12]}@send.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog, then files a delivery report.\r\n"
    body = line * max(1, (MESSAGE_SIZE - len(head)) // len(line))
    return (head + body).encode("ascii")


def recipient(number: int) -> str:
    return f"r{number}@{SINK_DOMAIN}"


# --- the sink --------------------------------------------------------------------------------------------------


class Sink:
    """One ``smtp-sink`` for both sides; its ``-c`` counter line (``mesg=N``) counts the messages it took.

    With ``-c`` the sink rewrites one counter line (``sess=.. quit=.. mesg=..``, ended by a carriage
    return) after every session and every final dot; only the file's tail is read, so a count costs
    microseconds however long the run.
    """

    _COUNT = re.compile(rb"mesg=(\d+)\r")

    def __init__(self, base: Path) -> None:
        self.output = base / "smtp-sink.out"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        command = ["smtp-sink", "-c", "-u", "nobody", "-h", "sink.bench.test", f"127.0.0.1:{self.port}", "512"]
        with self.output.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_smtp(self.port, "smtp-sink", self._process)

    def messages(self) -> int:
        with self.output.open("rb") as out:
            size = out.seek(0, os.SEEK_END)
            out.seek(max(0, size - 256))
            counts = self._COUNT.findall(out.read())
        return int(counts[-1]) if counts else 0

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(label, messages) per round: the warm-up, then the timed rounds."""
    warm_up = max(1, args.messages // 10)
    return [("warm-up", warm_up)] + [(f"round {n + 1}", args.messages) for n in range(args.rounds)]


def round_deadline(messages: int) -> float:
    """Seconds a round may take before the bench gives up: 20 messages/s would be a broken side."""
    return max(60.0, messages / 20)


# --- coldrelay ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in ``url``'s database, chosen through ``search_path`` in the URL; dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        query = dict(make_url(url).query)
        query["options"] = f"-csearch_path={schema}"
        yield make_url(url).set(query=query).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def coldrelay_config(data: Path, sink_port: int, nameserver: str, concurrency: int, batch_size: int, database_url: str) -> str:
    """coldrelay.toml for the bench: the sink as sink.test's transport, generous limits towards it."""
    lines = [
        'hostname = "relay.coldrelay.test"',
        f'database_url = "{database_url}"' if database_url else "",
        "[dns]",
        f'nameservers = ["{nameserver}"]',
        "[delivery]",
        f"concurrency = {concurrency}",
        f"batch_size = {batch_size}",
        "[transports]",
        f'"{SINK_DOMAIN}" = "127.0.0.1:{sink_port}"',
        "[destinations.default]",
        f"max_connections = {concurrency}",
        f"messages_per_minute = {MESSAGES_PER_MINUTE}",
        f"messages_per_connection = {MESSAGES_PER_CONNECTION}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _states(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(QueuedMessage.state, func.count()).group_by(QueuedMessage.state)).all()
    return {MessageState(state).value: int(count) for state, count in rows}


def _last_errors(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(QueuedMessage.state, QueuedMessage.last_error)
            .where(QueuedMessage.state.in_((MessageState.DEFERRED, MessageState.BOUNCED)))
            .limit(3)
        ).all()
    return [f"{state}: {error}" for state, error in rows]


class ColdrelaySide:
    """The real DeliveryService over a real MailQueue, in this process; one fresh service per round."""

    def __init__(self, settings: Settings, engine: Engine, sink: Sink) -> None:
        self.settings = settings
        self.engine = engine
        self.sink = sink
        self.queue = MailQueue(engine, settings.data_dir / "spool")
        nameservers = list(settings.dns.nameservers or ())
        self.resolver = Resolver(nameservers, timeout=settings.dns.timeout)
        # The end-of-round poll gets a thread of its own, so it never takes one of the default
        # executor's threads, which the queue and the reputation guard use for every message.
        self._poller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-poll")
        self._next = 0

    async def fill(self, count: int) -> None:
        """Enqueue ``count`` messages (group commit), before any clock starts."""
        numbers = range(self._next, self._next + count)
        self._next += count
        chunk = 256
        for start in range(numbers.start, numbers.stop, chunk):
            part = range(start, min(start + chunk, numbers.stop))
            await asyncio.gather(*(self.queue.enqueue(SENDER, [recipient(n)], message(n)) for n in part))

    async def deliver_all(self, label: str, count: int) -> Round:
        """Time one DeliveryService from start() until no row is left undelivered."""
        loop = asyncio.get_running_loop()
        before = self.sink.messages()
        service = DeliveryService(self.queue, self.engine, self.settings, self.resolver)
        deadline = time.monotonic() + round_deadline(count)
        started = time.perf_counter()
        await service.start()
        try:
            while True:
                states = await loop.run_in_executor(self._poller, _states, self.engine)
                if states.get("deferred") or states.get("bounced"):
                    errors = await loop.run_in_executor(self._poller, _last_errors, self.engine)
                    raise RuntimeError(f"coldrelay {label}: messages not delivered: {'; '.join(errors)}")
                if sum(n for state, n in states.items() if state != "delivered") == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"coldrelay {label}: not done after {round_deadline(count):.0f} s ({states})")
                await asyncio.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
        finally:
            await service.stop()
        taken = self.sink.messages() - before
        if taken != count:
            raise RuntimeError(f"coldrelay {label}: the sink took {taken} messages, expected {count}")
        return Round(label, count, seconds)

    async def run(self, rounds: list[tuple[str, int]]) -> list[Round]:
        results: list[Round] = []
        try:
            for label, count in rounds:
                await self.fill(count)
                result = await self.deliver_all(label, count)
                print(f"  coldrelay {label:>8}: {result.messages:6d} messages in {result.seconds:6.2f} s", flush=True)
                results.append(result)
        finally:
            await self.queue.close()
            self._poller.shutdown(wait=True)
        return results


def run_coldrelay(base: Path, sink: Sink, nameserver: str, args: argparse.Namespace) -> list[Round]:
    data = base / "coldrelay"
    data.mkdir(mode=0o700)
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_schema(args.database_url)) if args.database_url else ""
        config = coldrelay_config(data, sink.port, nameserver, args.concurrency, args.batch_size, database_url)
        (data / "coldrelay.toml").write_text(config, encoding="utf-8")
        settings = load_settings(data)
        engine = create_engine(settings.database_url)
        stack.callback(engine.dispose)
        upgrade_database(engine)
        side = ColdrelaySide(settings, engine, sink)
        return asyncio.run(side.run(plan(args)))


# --- Postfix -----------------------------------------------------------------------------------------------------


class PostfixRelay:
    """A private Postfix that relays everything to the sink; delivery held until ``release``."""

    def __init__(self, base: Path, sink: Sink, concurrency: int) -> None:
        self.root = base / "postfix"
        self.etc, self.queue, self.data = self.root / "etc", self.root / "queue", self.root / "data"
        self.sink = sink
        self.concurrency = concurrency
        self.port = 0
        self._running = False
        self._next = 0

    def settings(self) -> dict[str, str]:
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "relay.postfix.test",
            "mydomain": "postfix.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",  # the bench's own submissions may relay
            "relay_domains": "",
            "relayhost": f"[127.0.0.1]:{self.sink.port}",  # an IP literal: no MX or A lookup
            "default_transport": "smtp",
            "relay_transport": "smtp",
            "local_transport": "error:no local delivery in the bench",
            "smtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",  # Postfix 3's name for disable_dns_lookups = yes
            "default_destination_concurrency_limit": str(self.concurrency),
            "smtp_destination_concurrency_limit": str(self.concurrency),
            "default_process_limit": str(max(100, self.concurrency)),
            "defer_transports": "smtp",
            "alias_maps": "",
            "alias_database": "",
            "maillog_file": str(self.root / "maillog"),
            "maillog_file_prefixes": str(self.root),
            "biff": "no",
        }

    def create(self) -> None:
        for directory in (self.root, self.etc, self.queue, self.data):
            directory.mkdir(mode=0o755)
        owner = pwd.getpwnam("postfix")
        os.chown(self.data, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        main_cf = "".join(f"{key} = {value}\n" for key, value in self.settings().items())
        (self.etc / "main.cf").write_text(main_cf, encoding="utf-8")
        master_cf = POSTFIX_MASTER_CF.format(port=f"127.0.0.1:{self.port}") + SMTP_TRANSPORT
        (self.etc / "master.cf").write_text(master_cf, encoding="utf-8")

    def postconf(self, *names: str) -> str:
        return run("postconf", "-c", str(self.etc), *names).strip()

    def start(self) -> None:
        self._running = True
        run("postfix", "-c", str(self.etc), "start")
        wait_for_smtp(self.port, "postfix")

    def stop(self) -> None:
        if self._running or (self.queue / "pid" / "master.pid").exists():
            stop_postfix(self.etc, self.queue)
        self._running = False

    def hold(self) -> None:
        """Delivery off: ``defer_transports = smtp``, and a restart so no process runs the old setting."""
        run("postconf", "-c", str(self.etc), "-e", "defer_transports = smtp")
        self.stop()
        self.start()

    def queued(self, sub: str) -> int:
        return sum(1 for path in (self.queue / sub).rglob("*") if path.is_file())

    def fill(self, count: int) -> None:
        """Submit ``count`` messages over SMTP; they wait in the deferred queue (not timed)."""
        numbers = list(range(self._next, self._next + count))
        self._next += count
        before = self.sink.messages()

        def submit(part: list[int]) -> None:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.bench.test", timeout=60) as client:
                for number in part:
                    client.sendmail(SENDER, [recipient(number)], message(number))

        with ThreadPoolExecutor(max_workers=SUBMITTERS) as pool:
            for done in [pool.submit(submit, numbers[i::SUBMITTERS]) for i in range(SUBMITTERS)]:
                done.result()

        def all_deferred() -> bool:
            return self.queued("incoming") == 0 and self.queued("active") == 0 and self.queued("deferred") == count

        if not wait_until(all_deferred, round_deadline(count)):
            raise RuntimeError(f"postfix: {self.queued('deferred')} of {count} messages reached the deferred queue")
        if self.sink.messages() != before:
            raise RuntimeError("postfix delivered while defer_transports held the smtp transport")

    def release(self, label: str, count: int) -> Round:
        """Lift the hold, then time from ``postqueue -f`` until the queue is empty and the sink has every message.

        ``postfix reload`` alone takes about 2 s (postfix-script's checks), a fixed cost that is no
        delivery work, so it is kept out of the timed span and reported beside it. Nothing moves
        before the flush: a deferred message's queue file is dated at its next retry, minutes ahead,
        and the new queue manager's start-up scan skips it (checked below).
        """
        before = self.sink.messages()
        reload_started = time.perf_counter()
        run("postconf", "-c", str(self.etc), "-e", "defer_transports =")
        run("postfix", "-c", str(self.etc), "reload")
        reload_seconds = time.perf_counter() - reload_started
        time.sleep(RELOAD_SETTLE)  # the restarted queue manager, with the new setting, is up
        if self.sink.messages() != before:
            raise RuntimeError("postfix delivered before postqueue -f: the timing would miss those messages")
        deadline = time.monotonic() + round_deadline(count)
        started = time.perf_counter()
        run("postqueue", "-c", str(self.etc), "-f")
        while self.sink.messages() - before < count or not postfix_queue_empty(self.queue):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix {label}: sink took {self.sink.messages() - before} of {count} in time")
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        taken = self.sink.messages() - before
        if taken != count:
            raise RuntimeError(f"postfix {label}: the sink took {taken} messages, expected {count}")
        return Round(label, count, seconds, release=reload_seconds)

    def run(self, rounds: list[tuple[str, int]]) -> list[Round]:
        results: list[Round] = []
        for index, (label, count) in enumerate(rounds):
            if index:
                self.hold()
            self.fill(count)
            result = self.release(label, count)
            print(
                f"  postfix   {label:>8}: {result.messages:6d} messages in {result.seconds:6.2f} s "
                f"(+ {result.release:.2f} s postfix reload before the flush, untimed)",
                flush=True,
            )
            results.append(result)
        return results


def run_postfix(base: Path, sink: Sink, args: argparse.Namespace) -> list[Round]:
    relay = PostfixRelay(base, sink, args.concurrency)
    relay.create()
    try:
        relay.start()
        shown = relay.postconf(
            "default_destination_concurrency_limit",
            "smtp_destination_concurrency_limit",
            "smtp_connection_cache_on_demand",
            "relayhost",
        )
        print("  postfix: " + ", ".join(shown.splitlines()), flush=True)
        return relay.run(plan(args))
    finally:
        relay.stop()


# --- the report --------------------------------------------------------------------------------------------------


def best(rounds: list[Round]) -> Round:
    timed = [r for r in rounds if r.label != "warm-up"]
    return max(timed, key=lambda r: r.rate)


def report(ours: Round, theirs: Round) -> str:
    """The plain table of the best rounds and the verdict against the issue's floor."""
    rows = [("side", "messages", "seconds", "messages/s")]
    rows.append(("coldrelay", str(ours.messages), f"{ours.seconds:.2f}", f"{ours.rate:,.0f}"))
    rows.append(("postfix", str(theirs.messages), f"{theirs.seconds:.2f}", f"{theirs.rate:,.0f}"))
    with_reload = theirs.seconds + theirs.release
    rows.append(("postfix+reload", str(theirs.messages), f"{with_reload:.2f}", f"{theirs.rate_with_release:,.0f}"))
    lines = [f"{a:<15} {b:>9} {c:>9} {d:>11}" for a, b, c, d in rows]
    ratio = ours.rate / theirs.rate
    verdict = "meets" if ratio >= FLOOR else "BELOW"
    lines.append(f"ratio coldrelay/postfix: {ratio:.2f}x ({verdict} the {FLOOR}x floor; aim {AIM:.0f}x)")
    lines.append(f"(against postfix+reload, counting the release's reload: {ours.rate / theirs.rate_with_release:.2f}x)")
    return "\n".join(lines)


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=positive, default=2000, help="messages per timed round")
    parser.add_argument("--concurrency", type=positive, default=20, help="coldrelay [delivery] concurrency = Postfix's")
    parser.add_argument("--batch-size", type=positive, default=50, help="coldrelay [delivery] batch_size")
    parser.add_argument("--rounds", type=positive, default=3, help="timed rounds per side (best counts)")
    parser.add_argument("--database-url", default="", help="PostgreSQL for coldrelay's queue (a schema is made and dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.database_url and not args.database_url.startswith("postgresql"):
        print("--database-url takes a postgresql+psycopg:// URL (SQLite is the default)", file=sys.stderr)
        return 2
    missing = [tool for tool in ("smtp-sink", "postfix", "postqueue", "postconf") if shutil.which(tool) is None]
    if missing:
        print(f"{', '.join(missing)} not found: apt-get install postfix", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run as root: a private Postfix instance needs it", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # clean up however it is stopped
        signal.signal(signum, interrupt)
    base = Path(tempfile.mkdtemp(prefix="coldrelay-bench-delivery-"))
    base.chmod(0o755)  # Postfix's daemons, running as postfix, walk into it
    dns, sink = LoopbackDNS(), Sink(base)
    cleanups: list[Callable[[], None]] = [dns.stop, sink.stop]
    try:
        dns.start()
        sink.start()
        print(
            f"{args.messages} messages x {args.rounds} rounds (+ warm-up {max(1, args.messages // 10)}), ~{MESSAGE_SIZE} B each, "
            f"into smtp-sink on 127.0.0.1:{sink.port}; concurrency {args.concurrency} on both sides"
        )
        print(
            f"  coldrelay: [delivery] concurrency = {args.concurrency}, batch_size = {args.batch_size}; "
            f"[destinations.default] max_connections = {args.concurrency}, messages_per_minute = {MESSAGES_PER_MINUTE}, "
            f"messages_per_connection = {MESSAGES_PER_CONNECTION}; queue on "
            f"{'PostgreSQL (' + args.database_url + ')' if args.database_url else 'SQLite'}",
            flush=True,
        )
        ours = best(run_coldrelay(base, sink, dns.address, args))
        theirs = best(run_postfix(base, sink, args))
        print(report(ours, theirs))
        return 0
    except RuntimeError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        for cleanup in cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
