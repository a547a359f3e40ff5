"""The one exception type for errors a user can cause (bad file, bad argument, wrong checkpoint).

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class RestoreKitError(Exception):
    """An error caused by input, arguments or files, with a message meant for the user.

    ``hint`` says what to do in the library's own words (``overwrite=True``); ``cli_hint`` the same in
    the command line's (``pass --overwrite``), which the CLI prints instead. The library never names a
    command-line flag.
    """

    def __init__(self, message: str, *, hint: str = "", cli_hint: str = "") -> None:
        super().__init__(f"{message}; {hint}" if hint else message)
        self.message, self.hint, self.cli_hint = message, hint, cli_hint

    def for_cli(self) -> str:
        """The message as the command line shows it."""
        return f"{self.message}; {self.cli_hint}" if self.cli_hint else str(self)
