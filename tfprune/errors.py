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


def check_not_empty(value: str | None, flag: str, what: str) -> str | None:
  """`value`, refusing an empty string (`--flag=` given without a value).

  Raises:
    TfpruneError: `value` is '' (None, the flag left out, passes).
  """
  if value is not None and not value.strip():
    raise TfpruneError(f'{flag} is empty: pass the path of {what}, or leave '
                       'the flag out')
  return value
