"""The Celery app, its signals and queues, the beat schedule, Flower, and the `conveyor` CLI."""
