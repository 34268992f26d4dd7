"""Scheduling and running sub-queries: the use-cases, the scheduler and the executors."""
