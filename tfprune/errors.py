"""The error type for bad user input; scripts print it as one line and exit 2."""


def shorten(text: str, limit: int) -> str:
  """`text` on one line, cut at a word boundary to at most `limit` characters."""
  text = ' '.join(str(text).split())
  if len(text) <= limit:
    return text
  cut = text.rfind(' ', 0, limit - 1)
  return text[:cut if cut > 0 else limit - 1].rstrip(' :,;') + '…'


class TfpruneError(ValueError):
  """A problem with the user's input or files.

  The message is one line that names the problem and how to fix it.
  """
