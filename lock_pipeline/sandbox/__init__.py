"""Sandbox Stays and Tuya servers: part of the product (the embedded default runs on them),
and the same servers, with faults switched on, are what the tests talk to."""
