"""Packaged defaults: ``config.yaml`` and the sample zones and grid, shipped in the wheel.

``config.yaml`` and ``zones`` here are links to the repository's top-level files (one copy, edited
there); building a wheel copies what they point to. :func:`engine.settings.resolve_config_path`
falls back to them when neither ``--config``, ``CITYWATCH_CONFIG`` nor ``./config.yaml`` names a file.
"""
