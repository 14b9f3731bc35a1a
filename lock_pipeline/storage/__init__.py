"""Postgres: the embedded server, versioned schema files from sql/, and engines."""
