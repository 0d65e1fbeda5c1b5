"""The error type for bad user input; scripts print it as one line and exit 2."""


class TfpruneError(ValueError):
  """A problem with the user's input or files.

  The message is one line that names the problem and how to fix it.
  """
