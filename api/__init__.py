"""The thin HTTP API: submit jobs, read them back; FastAPI, authenticated, tenant-scoped."""
