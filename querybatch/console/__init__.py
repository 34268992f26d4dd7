"""The web console (issue 17): page shells and vendored assets, served by the API app.

The pages hold no data: their scripts read and change everything through the public API
with the key the browser keeps in session storage, so the console is one more client of the
same routes (same roles, tenants, rate limits and poll lane), never a second door.
"""

from querybatch.console.app import CONSOLE_PATH, console_app, to_console

__all__ = ["CONSOLE_PATH", "console_app", "to_console"]
