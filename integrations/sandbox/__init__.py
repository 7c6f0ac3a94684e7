"""A local stand-in for external providers (a data API, a payment API), run as a process."""
