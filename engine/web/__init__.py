"""What every HTTP API on the worker's web server shares: API keys with roles, bounded request bodies."""
