"""Settings, Celery configuration and logging set-up; imports nothing of ours."""
