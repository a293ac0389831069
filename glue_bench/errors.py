"""The one exception type the library raises for problems a user can act on."""


class GlueBenchError(Exception):
    """A user-facing error: the message is one line that says what is wrong and what to do."""
