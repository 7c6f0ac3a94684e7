"""Provider adapters, the one HTTP client, the error taxonomy and the sandbox providers."""
