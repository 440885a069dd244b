"""Outbound delivery."""
