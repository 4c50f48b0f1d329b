"""Tasks made from citizen reports: routing, the state machine, SLAs and escalation through the grid levels."""
