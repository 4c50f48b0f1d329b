"""The ground floor: clock, errors, limits and metrics. Imports nothing else of engine."""
