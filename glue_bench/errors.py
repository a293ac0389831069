"""The one exception type the library raises for problems a user can act on, and the one line every command
prints for an operating-system error (a read-only folder, a full disk, a folder where a file is expected)."""

import errno


class GlueBenchError(Exception):
    """A user-facing error: the message is one line that says what is wrong and what to do."""


class SpecFieldError(GlueBenchError):
    """A job spec field has a bad value; carries the field so callers can name their own key for it."""

    def __init__(self, field: str, value: object, why: str):
        super().__init__(f"job spec field {field}={value!r}: {why}")
        self.field, self.value, self.why = field, value, why


_WHAT_TO_DO = {
    errno.EACCES: "check its permissions, or choose a folder you can write to",
    errno.EPERM: "check its permissions, or choose a folder you can write to",
    errno.EROFS: "the file system is read-only: choose a folder on a writable one",
    errno.ENOSPC: "the disk is full: free some space and run the command again (finished work is kept)",
    errno.EDQUOT: "the disk quota is exhausted: free some space and run the command again (finished work is kept)",
    errno.EISDIR: "it is a folder where a file is expected: give a file",
    errno.ENOTDIR: "a part of it is a file where a folder is expected: fix the path",
    errno.ENOENT: "it does not exist: fix the path, or create its parent folder",
    errno.EEXIST: "it exists already: move it aside or choose another name",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: the path, what went wrong, and what to do."""
    path = error.filename if error.filename is not None else "?"
    if error.filename2 is not None:
        path = f"{path} -> {error.filename2}"
    what = error.strerror or type(error).__name__
    todo = _WHAT_TO_DO.get(error.errno)
    return f"{path}: {what}" + (f" ({todo})" if todo else "")
