"""Celery task entry points (thin), the executor that runs a job, and maintenance tasks."""
