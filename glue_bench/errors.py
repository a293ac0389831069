"""The one exception type the library raises for problems a user can act on."""


class GlueBenchError(Exception):
    """A user-facing error: the message is one line that says what is wrong and what to do."""


class SpecFieldError(GlueBenchError):
    """A job spec field has a bad value; carries the field so callers can name their own key for it."""

    def __init__(self, field: str, value: object, why: str):
        super().__init__(f"job spec field {field}={value!r}: {why}")
        self.field, self.value, self.why = field, value, why
