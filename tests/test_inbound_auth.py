"""SPF, DKIM and DMARC of inbound mail against the loopback DNS server (tests/zones/inbound.zone), and the exact
Authentication-Results field. Messages are DKIM-signed here with dkimpy and the key whose public half is in the zone."""

from __future__ import annotations

import asyncio

import dkim
import pytest

from coldrelay.dns import Resolver
from coldrelay.mta.checks import (
    AuthenticationResult,
    Disposition,
    DkimCheck,
    DmarcCheck,
    SpfCheck,
    Verdict,
    authenticate,
    authentication_results_header,
)
from coldrelay.mta.checks.authentication import aligned, from_domain
from coldrelay.mta.checks.headers import authserv_id, prepend_field, remove_authentication_results, split_header

INBOUND_KEY_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA0Q3lAhEPDtJzfyKZMu7N04GLnjiwrFFD99OVZXKiFmOuDhHK
SDhT8Zyklh8BrXnRW2Wh+bw69aNGmir3WGD3owbZ30FYQUUVrmP4/muMZlAXhwQ1
xryfxWrt8gDFs6+m7cvt2Nc4PfDTbq1Z56xbukSqp3Uwy7l7jG9wHmqqHH8SOBXu
Lz9piqw6B1l2T0rk1suCBmzbqiJfKd4y4oJI3VNoziRN+OWg8jTviDkRYepP4XDo
d6pTMJIPRAviqIFaGEUgS8ezqofsrZxF3Pgn1SL/we+rKjvB2O8cAjMuqs77Gzag
1tIZ70IXelHxqfKBywE9O+ZbOuPO6TrtoJ2AzwIDAQABAoIBAAsUEmu+na6qZmZ5
Xeb+Erg/qDd1R5+KGvD6LHOY1JAdLi8esDqNiZ1HMM2nzP31c6vFQgUq/XDg+y/W
UQ9E7DqedVNIcjXbRF/eemZ5KpKNcgG8rmDexBTBKuTlN5TjHRSC9xLDrP5TUdEO
rLIDR0UiuGxxYGmbZbm2ehmSi3tBBB15hr34dK4IZ0tikyDqFUiOP0qoFXaMA89J
WqGmwTkfAAkPeY5TkVg1fWQHknyrolPh37T/tIIvPtgPWRuw2OgfOS/sEUjBPC91
S2Pfiw4/RYWtEX1loVLlP8Vq+QwXevGmkP+21zJCZ9UD1jAPdWh3W/zhzBy0ZhXs
nzmnfOECgYEA7lcCoRdt87BlKw6FrygicBsBimOTCwHv5dVvAcdgkMfpCwfWJO9l
6Aa5rGYZA9x7lxjc06G67t/yje2PUJUY3NllbgOEJAkfGqzYcPb2N6PuviDjQMj3
P+oiD+TK5+zlJ7SnlUbW0OCMDG+ZjXhaVGCETZaCrAxloVRvoKHB+5ECgYEA4Itg
F7B1yf7CNM0zH2xbhgI3zwc33LL/XZeSzO6B/tsX3yJCd+xMz9xPI3kIpfBOJDd/
10vE+GjRjaAJWN9x4VkbAulzwM8lYPPBoagYRy/tSgk7pwKc+17fuIzzoWb3+ctu
o1BOgyJ+wLWuf8T4Qz13q0w23j8KUa0RGDKfxl8CgYBC8O9NHY6FPkr77+U+T/B0
OjGRk+wN0Gp3zB2Ui1Ik9/ENZxMPZqnhpFnsAPUPr5KK2rHTQv6E7yNqF4oEIQxN
o0Wow5YOpP02ecuE1uhKsmFwxz3syUUgj3snqaQPxeqK32OeOrpFCnxrVcD0ChSc
1Er0m8xx1D2LNXLw093u8QKBgQC6bz5zrNG/y0RYLt/5gTBkjcbkn+uj1QLuJIGA
oa9ReXvSilGB3LLSCuuyWjXyARoAPAxrJ7/9OJp06qGYJr4ZCrDAtDClr9grLXhh
zn2J7aMpS40515ObqmQ6iN1n72SJBH1yH6Vwf92aB79A2rv+qDSKB5eu48yfkACX
hMDgJQKBgQDq2RMMUpXx5cr+KHgNPQS2VyIfiC+A61Z5+L8wwaJn3ZE6079NXRt7
bqP26UuhI8FhZxqWXgwxmdEKZV+rX7vitev9o8gbK7P/br5ISMegwpTk52sOyruC
LRnxkkxcelCqkohRYvgdiv9ehWah+NMGMqdZKKKXCIl68VT3zhiEDQ==
-----END RSA PRIVATE KEY-----
"""

ALLOWED_IP = "192.0.2.10"
OTHER_IP = "198.51.100.9"
HOST = "mx.hosted.test"


def message(author: str = "alice@inbound.test", body: bytes = b"Hello Bob,\r\nthe numbers are in.\r\n") -> bytes:
    return (
        f"From: Alice <{author}>\r\nTo: bob@hosted.test\r\nSubject: Q3 numbers\r\n"
        f"Message-ID: <q3.1@inbound.test>\r\nDate: Mon, 06 May 2024 07:08:09 +0000\r\n\r\n"
    ).encode() + body


def signed(content: bytes, domain: str = "inbound.test", selector: str = "sel1") -> bytes:
    signature: bytes = dkim.sign(
        content,
        selector.encode(),
        domain.encode(),
        INBOUND_KEY_PEM,
        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
    )
    return signature + content


def check(
    resolver: Resolver,
    content: bytes,
    *,
    ip: str = ALLOWED_IP,
    mail_from: str = "alice@inbound.test",
    helo: str = "out.inbound.test",
) -> AuthenticationResult:
    return asyncio.run(authenticate(content, client_ip=ip, helo=helo, mail_from=mail_from, resolver=resolver))


# --------------------------------------------------------------------------- SPF


@pytest.mark.parametrize(
    ("mail_from", "ip", "expected"),
    [
        ("alice@inbound.test", ALLOWED_IP, Verdict.PASS),
        ("alice@inbound.test", "127.0.0.1", Verdict.PASS),
        ("alice@inbound.test", OTHER_IP, Verdict.FAIL),
        ("news@soft.inbound.test", OTHER_IP, Verdict.SOFTFAIL),
        ("news@soft.inbound.test", ALLOWED_IP, Verdict.PASS),
        ("alice@nospf.inbound.test", ALLOWED_IP, Verdict.NONE),
        ("alice@spf.servfail.test", ALLOWED_IP, Verdict.TEMPERROR),
    ],
)
def test_spf_of_the_mail_from_identity(resolver: Resolver, mail_from: str, ip: str, expected: Verdict) -> None:
    spf = check(resolver, message(), ip=ip, mail_from=mail_from).spf
    assert (spf.result, spf.identity, spf.value) == (expected, "mailfrom", mail_from)
    assert spf.domain == mail_from.rpartition("@")[2]


def test_spf_of_a_bounce_checks_the_helo_identity(resolver: Resolver) -> None:
    spf = check(resolver, message(), mail_from="", helo="inbound.test").spf
    assert (spf.result, spf.identity, spf.value, spf.domain) == (Verdict.PASS, "helo", "inbound.test", "inbound.test")
    assert check(resolver, message(), mail_from="", helo="inbound.test", ip=OTHER_IP).spf.result is Verdict.FAIL


def test_spf_without_a_client_address_is_none(resolver: Resolver) -> None:
    assert check(resolver, message(), ip="unknown").spf.result is Verdict.NONE


# --------------------------------------------------------------------------- DKIM


def test_dkim_pass_for_a_message_signed_with_the_published_key(resolver: Resolver) -> None:
    result = check(resolver, signed(message()))
    assert result.dkim == (DkimCheck(Verdict.PASS, "inbound.test", "sel1"),)


def test_dkim_fail_for_a_tampered_body(resolver: Resolver) -> None:
    tampered = signed(message()).replace(b"the numbers are in", b"the numbers are out")
    assert check(resolver, tampered).dkim == (DkimCheck(Verdict.FAIL, "inbound.test", "sel1", "body hash did not verify"),)


def test_dkim_fail_for_a_tampered_signed_header(resolver: Resolver) -> None:
    tampered = signed(message()).replace(b"Subject: Q3 numbers", b"Subject: Q4 numbers")
    assert check(resolver, tampered).dkim == (DkimCheck(Verdict.FAIL, "inbound.test", "sel1", "signature did not verify"),)


def test_dkim_none_without_a_signature(resolver: Resolver) -> None:
    assert check(resolver, message()).dkim == (DkimCheck(Verdict.NONE),)


def test_dkim_key_problems_are_permerror_and_dns_trouble_temperror(resolver: Resolver) -> None:
    missing = check(resolver, signed(message(), selector="nosuchkey")).dkim
    assert missing == (DkimCheck(Verdict.PERMERROR, "inbound.test", "nosuchkey", "no key for signature"),)
    revoked = check(resolver, signed(message(), selector="revoked")).dkim[0]
    assert (revoked.result, revoked.selector) == (Verdict.PERMERROR, "revoked") and revoked.reason.startswith("bad key")
    unreachable = check(resolver, signed(message(), domain="keys.servfail.test")).dkim
    assert unreachable == (DkimCheck(Verdict.TEMPERROR, "keys.servfail.test", "sel1", "key lookup failed"),)


def test_every_signature_gets_its_own_result(resolver: Resolver) -> None:
    twice = signed(signed(message()), selector="nosuchkey")  # the newest signature is on top
    assert [(c.result, c.selector) for c in check(resolver, twice).dkim] == [
        (Verdict.PERMERROR, "nosuchkey"),
        (Verdict.PASS, "sel1"),
    ]


# --------------------------------------------------------------------------- DMARC


def test_dmarc_pass_through_aligned_dkim_when_spf_does_not_align(resolver: Resolver) -> None:
    result = check(resolver, signed(message()), ip=OTHER_IP, mail_from="bounces@esp.elsewhere.test")
    assert result.spf.result is Verdict.NONE
    assert result.dmarc == DmarcCheck(
        Verdict.PASS, "inbound.test", "inbound.test", Disposition.REJECT, Disposition.NONE, spf_aligned=False, dkim_aligned=True
    )


def test_dmarc_pass_through_relaxed_spf_alignment(resolver: Resolver) -> None:
    result = check(resolver, message(), mail_from="news@soft.inbound.test")
    assert (result.dmarc.result, result.dmarc.spf_aligned, result.dmarc.dkim_aligned) == (Verdict.PASS, True, False)


def test_dmarc_fail_with_p_reject_is_recorded_as_the_disposition(resolver: Resolver) -> None:
    result = check(resolver, message(), ip=OTHER_IP)
    assert result.spf.result is Verdict.FAIL and result.dkim == (DkimCheck(Verdict.NONE),)
    assert result.dmarc == DmarcCheck(Verdict.FAIL, "inbound.test", "inbound.test", Disposition.REJECT, Disposition.REJECT)


def test_dmarc_fail_when_only_a_non_aligned_dkim_passes(resolver: Resolver) -> None:
    # d=inbound.test passes, but the author is at monitor.test (p=none: failing is recorded, nothing asked)
    result = check(resolver, signed(message(author="alice@monitor.test")), ip=OTHER_IP)
    assert result.dkim[0].result is Verdict.PASS
    assert result.dmarc == DmarcCheck(Verdict.FAIL, "monitor.test", "monitor.test", Disposition.NONE, Disposition.NONE)


def test_dmarc_subdomain_falls_back_to_the_organisational_domain_and_its_sp(resolver: Resolver) -> None:
    result = check(resolver, message(author="alice@news.inbound.test"), ip=OTHER_IP)
    assert result.dmarc == DmarcCheck(
        Verdict.FAIL, "news.inbound.test", "inbound.test", Disposition.QUARANTINE, Disposition.QUARANTINE
    )
    # relaxed alignment: d=inbound.test covers the subdomain author
    relaxed = check(resolver, signed(message(author="alice@news.inbound.test")), ip=OTHER_IP)
    assert (relaxed.dmarc.result, relaxed.dmarc.dkim_aligned, relaxed.dmarc.disposition) == (Verdict.PASS, True, Disposition.NONE)


def test_dmarc_strict_dkim_alignment_needs_the_same_domain(resolver: Resolver) -> None:
    result = check(resolver, signed(message(author="alice@strict.inbound.test")), ip=OTHER_IP)
    assert result.dkim[0].result is Verdict.PASS
    assert result.dmarc == DmarcCheck(
        Verdict.FAIL, "strict.inbound.test", "strict.inbound.test", Disposition.QUARANTINE, Disposition.QUARANTINE
    )


def test_dmarc_none_temperror_and_permerror(resolver: Resolver) -> None:
    assert check(resolver, message(author="alice@elsewhere.test")).dmarc == DmarcCheck(Verdict.NONE, "elsewhere.test")
    assert check(resolver, message(author="alice@dmarc.servfail.test")).dmarc == DmarcCheck(
        Verdict.TEMPERROR, "dmarc.servfail.test"
    )
    two_authors = message().replace(b"From: Alice <alice@inbound.test>", b"From: a@inbound.test, b@elsewhere.test")
    assert check(resolver, two_authors).dmarc == DmarcCheck(Verdict.PERMERROR, reason="not exactly one From address")
    two_fields = b"From: c@elsewhere.test\r\n" + message()
    assert check(resolver, two_fields).dmarc.result is Verdict.PERMERROR


def test_alignment_and_from_domain_helpers() -> None:
    assert aligned("mail.inbound.test", "inbound.test", "r") and not aligned("mail.inbound.test", "inbound.test", "s")
    assert aligned("Inbound.Test.", "inbound.test", "s") and not aligned("", "inbound.test", "r")
    assert aligned("bounce.example.co.uk", "news.example.co.uk", "r") and not aligned("a.co.uk", "b.co.uk", "r")
    assert from_domain(b"From: =?utf-8?q?A?= <a@Mail.Example.>\r\n\r\n") == "mail.example"
    assert from_domain(b"From: nobody\r\n\r\n") is None and from_domain(b"Subject: x\r\n\r\n") is None


# --------------------------------------------------------------------------- Authentication-Results


def test_authentication_results_text_for_an_aligned_signed_message(resolver: Resolver) -> None:
    result = check(resolver, signed(message()))
    assert authentication_results_header(HOST, result) == (
        "Authentication-Results: mx.hosted.test;\r\n"
        "\tspf=pass smtp.mailfrom=alice@inbound.test;\r\n"
        "\tdkim=pass header.d=inbound.test header.s=sel1;\r\n"
        "\tdmarc=pass (p=reject dis=none) header.from=inbound.test"
    )


def test_authentication_results_text_for_a_failing_message(resolver: Resolver) -> None:
    tampered = signed(message()).replace(b"the numbers are in", b"the numbers are out")
    result = check(resolver, tampered, ip=OTHER_IP, mail_from="")
    assert authentication_results_header(HOST, result) == (
        "Authentication-Results: mx.hosted.test;\r\n"
        "\tspf=none (out.inbound.test has no SPF record) smtp.helo=out.inbound.test;\r\n"
        "\tdkim=fail (body hash did not verify) header.d=inbound.test header.s=sel1;\r\n"
        "\tdmarc=fail (p=reject dis=reject) header.from=inbound.test"
    )


def test_authentication_results_quotes_odd_values_and_escapes_comments() -> None:
    result = AuthenticationResult(
        SpfCheck(Verdict.NONE, "mailfrom", '"odd local"@x.test', "x.test", "no (record)"),
        (DkimCheck(Verdict.PERMERROR, reason="signature without d= or s="),),
        DmarcCheck(Verdict.PERMERROR, reason="not exactly one From address"),
    )
    assert authentication_results_header(HOST, result) == (
        "Authentication-Results: mx.hosted.test;\r\n"
        '\tspf=none (no \\(record\\)) smtp.mailfrom="\\"odd local\\"@x.test";\r\n'
        "\tdkim=permerror (signature without d= or s=);\r\n"
        "\tdmarc=permerror (not exactly one From address)"
    )


# --------------------------------------------------------------------------- header handling


def test_only_authentication_results_claiming_our_hostname_are_removed() -> None:
    content = (
        b"Authentication-Results: MX.Hosted.Test.; dkim=pass header.d=bank.example\r\n"
        b"Authentication-Results: (forged) mx.hosted.test 1;\r\n\tspf=pass smtp.mailfrom=x@bank.example\r\n"
        b"Authentication-Results: mx.google.example; spf=pass\r\n"
        b"Subject: hi\r\n\r\nAuthentication-Results: mx.hosted.test; in the body stays\r\n"
    )
    cleaned, removed = remove_authentication_results(content, HOST)
    assert removed == 2
    assert cleaned == (
        b"Authentication-Results: mx.google.example; spf=pass\r\n"
        b"Subject: hi\r\n\r\nAuthentication-Results: mx.hosted.test; in the body stays\r\n"
    )
    assert remove_authentication_results(cleaned, HOST) == (cleaned, 0)


def test_header_helpers_keep_bytes_as_they_are() -> None:
    content = b"A: 1\r\nB: 2\r\n\tcontinued\r\n\r\nbody\r\n"
    fields, rest = split_header(content)
    assert fields == [b"A: 1\r\n", b"B: 2\r\n\tcontinued\r\n"] and rest == b"\r\nbody\r\n"
    assert split_header(b"A: 1\r\nnot a header\r\nB: 2\r\n") == ([b"A: 1\r\n"], b"not a header\r\nB: 2\r\n")
    assert authserv_id(b"Authentication-Results: (c (nested)) Example.COM; none\r\n") == "example.com"
    assert prepend_field(content, "X: 1\r\n\ty") == b"X: 1\r\n\ty\r\n" + content
    assert prepend_field(b"A: 1\n\nbody\n", "X: 1\r\n\ty") == b"X: 1\n\ty\nA: 1\n\nbody\n"
