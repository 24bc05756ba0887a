"""Exceptions. Every class subclasses ScdeepError and the builtin a Python user expects,
so `except ValueError` keeps working; the message is the core's, naming the argument."""


class ScdeepError(Exception):
    """Base class of scdeep's errors."""


class InvalidOptionError(ScdeepError, ValueError):
    """An option or argument is unknown or out of range, k > cells included (the message names it)."""


class DataError(ScdeepError, ValueError):
    """The data is unusable: NaN or negative counts, all zeros, NUL bytes in names, ..."""


class FileFormatError(ScdeepError, ValueError):
    """A file is malformed or of an unknown format."""


class ScdeepIOError(ScdeepError, OSError):
    """A file or folder is missing or cannot be read or written."""


class NumericError(ScdeepError, RuntimeError):
    """libtorch failed or training diverged (NaN/inf loss)."""


def _kinds():
    """The core's error table (one owner: scdeep_core::error::ERROR_KINDS): kind -> class."""
    import builtins
    import json

    from . import _scdeep

    return {k["kind"]: globals().get(k["python_class"]) or getattr(builtins, k["python_class"])
            for k in json.loads(_scdeep.error_kinds_json())}


_KINDS = _kinds()


def _convert(e):
    kind, msg = e.args if len(e.args) == 2 else ("numeric", str(e))
    return _KINDS.get(kind, ScdeepError)(msg)
