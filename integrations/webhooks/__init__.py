"""Outbound webhooks: tenants' endpoints, signed with the Standard Webhooks scheme, SSRF-checked."""
