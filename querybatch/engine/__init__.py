"""Scheduling and running sub-queries: the scheduler, the runner and the executors."""
