"""The HTTP API: routes, authentication, roles, rate limits, error envelopes, output formats."""
