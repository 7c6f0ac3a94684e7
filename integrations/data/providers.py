"""The data providers Conveyor syncs from and what each can do: the one table to add one to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from integrations.base import JobType
from integrations.data.fx import SYNC_RATES
from integrations.data.http_pull import PULL

Paging = Literal["single", "cursor_or_link"]


@dataclass(frozen=True)
class DataProviderSpec:
    """One provider: its sync job type and the capabilities the platform relies on.

    `conditional`: it answers `If-None-Match` / `If-Modified-Since` with 304, so an unchanged
    source costs one request and no writes. `paging`: one document per run, or pages named by a
    cursor or a next link. `natural_key`: the fields that identify a record within a resource.
    `tenant_configured`: each tenant names its own sources (and URLs, checked outbound).
    """

    name: str
    job_type: JobType[Any]
    resources: str
    natural_key: tuple[str, ...]
    conditional: bool
    paging: Paging
    tenant_configured: bool


DATA_PROVIDERS: dict[str, DataProviderSpec] = {
    spec.name: spec
    for spec in (
        DataProviderSpec(
            name="fx",
            job_type=SYNC_RATES,
            resources="reference_rates, reference_rates.<BASE>",
            natural_key=("date", "currency"),
            conditional=True,
            paging="single",
            tenant_configured=False,
        ),
        DataProviderSpec(
            name="http",
            job_type=PULL,
            resources="<source name>",
            natural_key=("<key_path>",),
            conditional=False,
            paging="cursor_or_link",
            tenant_configured=True,
        ),
    )
}


def data_job_types() -> tuple[JobType[Any], ...]:
    """The sync job types of every data provider, for the registry."""
    return tuple(spec.job_type for spec in DATA_PROVIDERS.values())
