"""The simulated receiving world of the end-to-end "day of cold email" test (issue 8).

Recipient domains whose MX hosts answer like Gmail, Microsoft 365, Yahoo and a plain Postfix, all on
127.0.0.1: a loopback DNS server with coldrelay's own record plans for the sending domains
(``zones``), one aiosmtpd server per provider with its real reply texts (``profiles``,
``receivers``), SPF/DKIM/DMARC verdicts (``authcheck``), bounces and replies sent back later
(``responders``), and a ledger of every answer (``ledger``); ``world.World`` ties them together.

Importable as ``world.*`` with ``tests/`` on ``sys.path`` (pytest's rootdir conftest does that; a
script must insert it itself). Nothing here depends on pytest.
"""
