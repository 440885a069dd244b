"""Provisioning a hosted domain: the DNS records it needs, checking them in live DNS, pushing them to a provider."""
