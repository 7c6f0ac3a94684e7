"""`/v1/data`: stored provider records, sync state, and the tenant's pull sources and secrets."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from api.cursors import position
from api.data_schemas import (
    NAME,
    RecordOut,
    RecordPage,
    SecretIn,
    SecretOut,
    SourceConfig,
    SourceOut,
    SyncOut,
)
from api.deps import DatabaseDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.inputs import Screened, Text, UtcDatetime
from api.jsonbody import JsonBodyRoute
from integrations.registry import JOB_TYPES
from store.keyset import bigint_key, encode_cursor
from store.records import RecordFilter, Scope, list_records
from store.secrets import SecretKeyMissing, put_secret, secret_names
from store.sources import get_source, list_sources, put_source
from store.syncs import list_syncs
from tasks.data_sync import check_source_url


class ProviderSegment(Convertor[str]):
    """A data provider's name in a records path: never one of this router's own segments, so
    `/v1/data/secrets/{name}` and `/v1/data/sources/{name}` are theirs alone (their `Allow`)."""

    regex = "(?!(?:secrets|sources|syncs)/)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("data_provider", ProviderSegment())
router = APIRouter(prefix="/v1/data", tags=["data"], route_class=JsonBodyRoute)

FIELD_FILTERS_MAX = 5
FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# A secret's or source's name is shown back in lists: screened like any stored name, so a card
# number is refused (`422 card_data_refused`), not kept as a name.
NamePath = Annotated[Screened, Path(pattern=NAME)]
# The providers are the middle part of the registered `data.<provider>.<action>` job types.
DATA_PROVIDERS = frozenset(
    name.split(".")[1] for name in JOB_TYPES if name.startswith("data.") and name.count(".") == 2
)


@router.get("/syncs", response_model=list[SyncOut])
def syncs(principal: PrincipalDep, db: DatabaseDep) -> list[SyncOut]:
    """Every sync of the tenant: cursor, last success, pages and counts, last error."""
    with db.session() as session:
        return [
            SyncOut(
                provider=row.provider,
                resource=row.resource,
                cursor=row.cursor,
                complete=row.cursor is None,
                job_id=row.job_id,
                pages=row.pages,
                fetched=row.fetched,
                inserted=row.inserted,
                updated=row.updated,
                unchanged=row.unchanged,
                pass_started_at=row.pass_started_at,
                last_page_at=row.last_page_at,
                last_success_at=row.last_success_at,
                last_error=row.last_error,
                last_error_at=row.last_error_at,
            )
            for row in list_syncs(session, principal.tenant_id)
        ]


@router.put(
    "/secrets/{name}",
    response_model=SecretOut,
    responses={201: {"description": "created", "model": SecretOut}},
)
def set_secret(
    name: NamePath,
    body: SecretIn,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> SecretOut:
    """Store a named secret encrypted (201 when new); its value is never answered."""
    try:
        with db.session() as session:
            created = put_secret(session, settings, principal.tenant_id, name, body.value)
    except SecretKeyMissing as exc:
        raise ApiError(503, "secrets_unavailable", str(exc)) from None
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    with db.session() as session:
        row = next(r for r in secret_names(session, principal.tenant_id) if r.name == name)
        return SecretOut(name=row.name, created_at=row.created_at, updated_at=row.updated_at)


@router.get("/secrets", response_model=list[SecretOut])
def secrets(principal: PrincipalDep, db: DatabaseDep) -> list[SecretOut]:
    """The tenant's secrets by name (no values)."""
    with db.session() as session:
        return [
            SecretOut(name=r.name, created_at=r.created_at, updated_at=r.updated_at)
            for r in secret_names(session, principal.tenant_id)
        ]


@router.put(
    "/sources/{name}",
    response_model=SourceOut,
    responses={201: {"description": "created", "model": SourceOut}},
)
def set_source(
    name: NamePath,
    body: SourceConfig,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> SourceOut:
    """Create or replace a pull source (201 when new); its URL must pass the outbound check."""
    try:
        check_source_url(body.url, settings)
    except ValueError as exc:
        raise ApiError(422, "outbound_refused", str(exc), {"loc": ["body", "url"]}) from None
    config = body.model_dump(exclude_none=True)
    with db.session() as session:
        if body.secret and body.secret not in {
            r.name for r in secret_names(session, principal.tenant_id)
        }:
            raise ApiError(
                422,
                "unknown_secret",
                f"no secret named {body.secret!r}",
                {"loc": ["body", "secret"]},
            )
        created = put_source(session, principal.tenant_id, name, config)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    with db.session() as session:
        row = get_source(session, principal.tenant_id, name)
        assert row is not None
        return SourceOut(
            name=row.name, config=row.config, created_at=row.created_at, updated_at=row.updated_at
        )


@router.get("/sources", response_model=list[SourceOut])
def sources(principal: PrincipalDep, db: DatabaseDep) -> list[SourceOut]:
    """The tenant's pull sources."""
    with db.session() as session:
        return [
            SourceOut(
                name=r.name, config=r.config, created_at=r.created_at, updated_at=r.updated_at
            )
            for r in list_sources(session, principal.tenant_id)
        ]


@router.get("/{provider:data_provider}/{resource}", response_model=RecordPage)
def records(
    provider: str,
    resource: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    key: Text | None = None,
    key_prefix: Text | None = None,
    updated_since: UtcDatetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> RecordPage:
    """The tenant's stored records of one resource, oldest change first; filter by exact
    `key`, `key_prefix` (FX keys are `DATE|CURRENCY`), `updated_since`, and a record's own
    top-level fields as `data.<field>=<value>` (e.g. `data.currency=USD`, up to
    `FIELD_FILTERS_MAX`); pass `next_cursor` back as `cursor`."""
    if provider not in DATA_PROVIDERS:
        raise ApiError(
            404, "not_found", f"no data provider {provider!r}", {"known": sorted(DATA_PROVIDERS)}
        )
    limit = min(limit, settings.page_size_max)
    after = position(cursor, bigint_key)
    fields = tuple(
        (name.removeprefix("data."), value)
        for name, value in request.query_params.multi_items()
        if name.startswith("data.")
    )
    if len(fields) > FIELD_FILTERS_MAX or any(not FIELD.match(name) for name, _ in fields):
        raise ApiError(
            422,
            "invalid_filter",
            f"up to {FIELD_FILTERS_MAX} filters data.<field> with a field of letters, digits, _",
            {"loc": ["query"], "fields": [name for name, _ in fields]},
        )
    flt = RecordFilter(key, key_prefix, updated_since, after, fields)
    with db.session() as session:
        rows = list_records(session, Scope(principal.tenant_id, provider, resource), flt, limit)
        items = [
            RecordOut(
                key=r.natural_key,
                data=r.data,
                content_hash=r.content_hash,
                job_id=r.job_id,
                first_seen_at=r.first_seen_at,
                last_seen_at=r.last_seen_at,
                changed_at=r.changed_at,
            )
            for r in rows
        ]
    following = encode_cursor(rows[-1].changed_at, rows[-1].id) if len(rows) == limit else None
    return RecordPage(items=items, next_cursor=following)
