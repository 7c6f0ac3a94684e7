"""`store.records.upsert_records` on SQLite and PostgreSQL: a page goes in as one JSON parameter
and comes back as the same values; inserts, updates and unchanged records are told apart."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from integrations.data.base import Record
from store.data_models import DataRecord
from store.db import get_database
from store.keys import IssuedKey
from store.records import NewRecord, Scope, UpsertCounts, upsert_records
from store.types import utcnow

AWKWARD: dict[str, dict[str, Any]] = {
    'quote"back\\slash': {"text": 'say "hi"\n\ttab', "n": -12, "x": 0.1, "big": 2**62},
    "ünïcødé-€": {"name": "Grüße, 東京 🚚", "none": None, "flag": False, "list": [1, [2, {}]]},
    "42": {"nested": {"deep": {"er": ["a", "b"]}}, "empty": "", "zero": 0},
}


def new(records: dict[str, dict[str, Any]]) -> list[NewRecord]:
    built = [Record(key, data) for key, data in records.items()]
    return [NewRecord(r.key, r.canonical_json, r.content_hash) for r in built]


def rows(s: Settings) -> dict[str, DataRecord]:
    with get_database(s).session() as session:
        return {r.natural_key: r for r in session.scalars(select(DataRecord))}


def test_awkward_keys_and_values_come_back_as_they_went_in_and_are_counted(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a page of records with quotes, backslashes, non-ASCII text, nulls, nesting, floats
    s = data_settings
    scope = Scope(tenant_key.tenant_id, "http", "awkward")
    first_job, second_job = uuid.uuid4(), uuid.uuid4()
    first_at = utcnow()
    db = get_database(s)
    # When it is upserted, then again with one record changed and one key repeated
    with db.connection() as conn:
        inserted = upsert_records(conn, scope, first_job, new(AWKWARD), first_at)
    changed = {**AWKWARD, "42": {**AWKWARD["42"], "zero": 1}}
    again = [*new(changed), *new({"42": changed["42"]})]
    with db.connection() as conn:
        second = upsert_records(conn, scope, second_job, again, first_at + timedelta(seconds=1))
    # Then the counts tell the insert, the update and the unchanged apart
    assert inserted == UpsertCounts(fetched=3, inserted=3)
    assert second == UpsertCounts(fetched=3, updated=1, unchanged=2)
    # and every record reads back as it was fetched, hashed as fetched
    stored = rows(s)
    assert {key: row.data for key, row in stored.items()} == changed
    assert {key: row.content_hash for key, row in stored.items()} == {
        key: Record(key, data).content_hash for key, data in changed.items()
    }
    # and the unchanged ones kept their change time, while their sighting and job moved on
    for key, row in stored.items():
        assert row.job_id == second_job and row.last_seen_at > row.first_seen_at
        assert (row.changed_at > row.first_seen_at) == (key == "42")
