"""The one exception type for errors a user can cause (bad file, bad argument, wrong checkpoint).

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class RestoreKitError(Exception):
    """An error caused by input, arguments or files, with a message meant for the user."""
