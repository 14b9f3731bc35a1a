"""Stays (stays.net) External API: the HTTP client, and pure parsing of what it returns."""
