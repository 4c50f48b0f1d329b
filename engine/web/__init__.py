"""What every HTTP API on the worker's web server shares: API keys with roles, bounded request bodies.

``auth`` and ``guard`` check keys and roles, ``body`` reads a bounded body, ``health`` answers
``GET /health``, ``faust_pages`` switches off Faust's own pages, ``settings`` is the ``web`` section.
May import the standard library, faust's web types and :mod:`engine.core`; never a domain.
"""
