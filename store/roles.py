"""What an API key may do: a tenant's own jobs, or operations across tenants."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """An API key's role (`api_keys.role`).

    tenant: the tenant's own `/v1` routes only. operator: also the ops routes (`/ops`, `/v1/ops`),
    across every tenant, each action audited. admin: an operator that may also manage keys.
    """

    TENANT = "tenant"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def operates(self) -> bool:
        """True for roles that may use the ops routes."""
        return self in (Role.OPERATOR, Role.ADMIN)
