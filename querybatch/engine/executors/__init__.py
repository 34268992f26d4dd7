"""Where sub-queries run (in this process, or on Celery workers) and what runs them there.

The executors bring their own run-time (runner, recorder, throttle, a worker's runtime) and
import nothing of the engine above them.
"""
