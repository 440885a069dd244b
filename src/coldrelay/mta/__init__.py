"""The mail host: SMTP edge, durable queue, outbound relay and local mailbox store."""
