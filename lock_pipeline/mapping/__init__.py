"""Listing <-> lock mapping: fuzzy suggestions (``matching``), the map's decisions (``store``), the
locks Tuya reports (``locks``)."""
