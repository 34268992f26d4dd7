"""Where sub-queries run: in this process (local) or on Celery workers."""
