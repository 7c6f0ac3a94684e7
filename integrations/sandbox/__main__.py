"""`python -m integrations.sandbox`: run the sandbox providers as their own process."""

from __future__ import annotations

import argparse
import os

from integrations.sandbox.server import (
    DEFAULT_ADYEN_API_KEY,
    DEFAULT_API_KEY,
    DEFAULT_STRIPE_API_KEY,
    serve,
)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until SIGTERM; the exit status is 0 on a clean stop."""
    parser = argparse.ArgumentParser(prog="python -m integrations.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="default delay per call")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CONVEYOR_SANDBOX_API_KEY") or DEFAULT_API_KEY,
        help="bearer key the provider endpoints require (env CONVEYOR_SANDBOX_API_KEY)",
    )
    parser.add_argument(
        "--stripe-api-key",
        default=os.environ.get("CONVEYOR_STRIPE_API_KEY") or DEFAULT_STRIPE_API_KEY,
        help="bearer key the Stripe-like API also accepts (env CONVEYOR_STRIPE_API_KEY)",
    )
    parser.add_argument(
        "--adyen-api-key",
        default=os.environ.get("CONVEYOR_ADYEN_API_KEY") or DEFAULT_ADYEN_API_KEY,
        help="X-API-Key the Adyen-like API requires (env CONVEYOR_ADYEN_API_KEY)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    serve(
        args.host,
        args.port,
        args.latency_ms,
        api_key=args.api_key,
        stripe_api_key=args.stripe_api_key,
        adyen_api_key=args.adyen_api_key,
        verbose=args.verbose,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
