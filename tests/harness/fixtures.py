"""LOCAL STUB until branch harness lands (untracked)."""
