"""Performance scripts (`make perf-*`): they print figures recorded in docs/; they are not tests."""
