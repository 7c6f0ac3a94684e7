"""What `python -m dramatiq bench.dramatiq_worker` loads: broker and actors, from the env."""

from __future__ import annotations

import os

import dramatiq

from bench.dramatiq_app import NAMESPACE_ENV, create_broker, declare

broker = create_broker(os.environ[NAMESPACE_ENV])
dramatiq.set_broker(broker)
ACTORS = declare(broker)
