"""Runs an absl `main` so that every way a script can end is one line on stderr.

The `tfprune` command (`tfprune.commands`) and the scripts in `experiments/`
call `cli.run(main)` instead of `app.run(main)`:

- `--help`: the command's docstring and its flags on stdout, exit status 0;
- bad input, a `TfpruneError` or a bad flag (unknown, missing, unparsable):
  `error: <problem>: <fix>`, exit status 2;
- Ctrl-C: `interrupted: <what was kept>`, exit status 130, no traceback
  (SIGTERM: the same line, exit status 143); after the command's work is done
  (while Python shuts down), the line says every result was written;
- any other exception: `error: internal error <Type>: <message>: rerun with
  --debug for the traceback`, exit status 1 (`--debug` prints the traceback).

Import this module before TensorFlow: it raises TensorFlow's C++ log level to
warnings. (TensorFlow 2.21 still prints a few `I0000`/`E0000` lines about
oneDNN and CUDA before its logging starts; they are harmless.)
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import pathlib
import re
import shlex
import signal
import sys
import tempfile
import traceback
from typing import Callable, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


_real_stderr_fd = 2  # fd 2 while `_stderr_lines_once` is not capturing it


def _interrupted_while_importing(signum, frame):
  del signum, frame
  # Nothing can have been written yet: end at once, without a traceback.
  os.write(_real_stderr_fd, f'{INTERRUPTED}\n'.encode())
  os._exit(EXIT_INTERRUPTED)  # pylint: disable=protected-access


@contextlib.contextmanager
def _stderr_lines_once():
  """Collects what C++ code writes to fd 2, then prints each message once.

  TensorFlow 2.21 loads two libraries that each print the same start-up
  banner (oneDNN, CUDA) straight to fd 2; the repeat is dropped.
  """
  global _real_stderr_fd
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    _real_stderr_fd = saved
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      _real_stderr_fd = 2
      os.close(saved)
      captured.seek(0)
      seen = set()
      for line in captured.read().decode(errors='replace').splitlines():
        # Glog lines start with level+date, time, thread: compare the rest.
        key = re.sub(r'^[IWEF]\d{4} \S+ +\d+ ', '', line)
        if key not in seen:
          seen.add(key)
          print(line, file=sys.stderr)
      sys.stderr.flush()


class _QuietTensorflowImport(importlib.abc.MetaPathFinder):
  """Imports `tensorflow` inside `_stderr_lines_once` when a script first asks."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)
    with _stderr_lines_once():
      module = importlib.import_module('tensorflow')
    return importlib.machinery.ModuleSpec(name, _Imported(module),
                                          is_package=True)


class _Imported(importlib.abc.Loader):
  """Hands an already imported module to the import system."""

  def __init__(self, module):
    self._module = module

  def create_module(self, spec):
    return self._module

  def exec_module(self, module):
    pass


INTERRUPTED = 'interrupted: nothing was written over'
INTERRUPTED_AFTER_RUN = 'interrupted after the run had finished: every result was written'
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it ended


class Terminated(KeyboardInterrupt):
  """SIGTERM, handled as Ctrl-C is (the same line) but ending with status 143."""


def _raise_terminated(signum, frame):
  del signum, frame
  raise Terminated()


def _interrupted_after_run(signum, frame):
  del frame
  # `main` returned: its results are whole; only the shutdown was cut short.
  sys.stdout.flush()
  os.write(_real_stderr_fd, f'{INTERRUPTED_AFTER_RUN}\n'.encode())
  os._exit(EXIT_TERMINATED if signum == signal.SIGTERM  # pylint: disable=protected-access
           else EXIT_INTERRUPTED)


def _imported_by_a_script() -> bool:
  main_file = getattr(sys.modules.get('__main__'), '__file__', None) or ''
  return pathlib.Path(main_file).resolve().parent.name == 'experiments'


def quiet_start() -> None:
  """Prepares a command's process: TensorFlow's banner once, Ctrl-C in one line.

  Called by the `tfprune` command before it imports a tool, and on import by
  the scripts of experiments/ (which import this module first and TensorFlow
  after it); a library user's process is left alone.
  """
  if 'tensorflow' not in sys.modules and not any(
      isinstance(f, _QuietTensorflowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorflowImport())
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    # Importing TensorFlow takes seconds; a Ctrl-C then should not print the
    # traceback of an import.
    signal.signal(signal.SIGINT, _interrupted_while_importing)


if _imported_by_a_script():
  quiet_start()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfprune.errors import TfpruneError  # pylint: disable=wrong-import-position
from tfprune.errors import shorten  # pylint: disable=wrong-import-position

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
MAX_MESSAGE = 300

_DEBUG = flags.DEFINE_bool(
    'debug', False, 'Print the traceback of an unexpected error.')

_FIXES = {'int': 'give a whole number', 'float': 'give a number',
          'bool': 'give true or false', 'list': 'give comma-separated values'}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
  """`text` on one line, shortened at a word boundary to at most `limit` chars."""
  return shorten(text, limit)


def flag_error_message(error: flags.Error,
                       flag_values: flags.FlagValues = flags.FLAGS) -> str:
  """The `<problem>: <fix>` line for one of absl's flag parsing errors."""
  text = one_line(error, limit=10_000)
  if isinstance(error, flags.UnrecognizedFlagError):
    name = error.flagname
    suggestion = re.search(r'Did you mean: (\S+)', text)
    if suggestion:
      return f'unknown flag --{name}: did you mean --{suggestion.group(1).rstrip(",")}?'
    return f'unknown flag --{name}: see --help for the flags of this script'
  missing = re.fullmatch(r'flag --(\w+)=None: Flag --\w+ must have a value '
                         r'other than None\.', text)
  if missing:
    name = missing.group(1)
    return f'flag --{name} is required: pass --{name}=<value>'
  no_value = re.fullmatch(r'Missing value for flag --?(\w+)', text)
  if no_value:
    name = no_value.group(1)
    return f'flag --{name} has no value: pass it as --{name}=<value>'
  bad = re.match(r'flag --(\w+)=(.*?): (.*)', text)
  if bad:
    name, value, detail = bad.groups()
    flag = flag_values[name] if name in flag_values else None
    kind = flag.flag_type() if flag is not None else ''
    enum_values = getattr(getattr(flag, 'parser', None), 'enum_values', None)
    if enum_values:
      return (f'flag --{name}={value} is not valid: use one of '
              f'{", ".join(map(str, enum_values))}')
    fix = _FIXES.get(kind, 'see --help for the valid values')
    return f'flag --{name}={value} is not valid ({detail.rstrip(".")}): {fix}'
  return f'{text}: see --help for the flags of this script'


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing, with its errors as one `error:` line and exit 2."""
  try:
    return flags.FLAGS(list(argv))
  except flags.Error as e:
    print(f'error: {one_line(flag_error_message(e))}', file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


_HELP_ARGS = frozenset(('-h', '--h', '-help', '--help', '-helpshort',
                        '--helpshort', '-?', '--?'))
_FULL_HELP_ARGS = frozenset(('-helpfull', '--helpfull'))
_command_line = ''


def _help_asked(argv: Sequence[str]) -> str | None:
  """'short' or 'full' if the flags before any `--` ask for help, else None."""
  for arg in argv[1:]:
    if arg == '--':
      break
    if arg in _FULL_HELP_ARGS:
      return 'full'
    if arg in _HELP_ARGS:
      return 'short'
  return None


def help_text(main: Callable[..., object], doc: str | None,
              full: bool = False) -> str:
  """The usage text of a command: its docstring, then its flags.

  absl's own `--help` ends the process with status 1; a command's help is
  what the user asked for, so `run` prints this text and exits 0 instead.
  """
  if full:
    flag_text = flags.FLAGS.get_help()
  else:
    module = main.__module__
    if module == '__main__':  # absl files a script's flags under its path
      module = sys.argv[0]
    flag_text = '\n'.join(t for t in (flags.FLAGS.module_help(module),
                                      flags.FLAGS.module_help(__name__)) if t)
  text = (doc or '').strip() or f'USAGE: {sys.argv[0]} [flags]'
  return (f'{text}\n\nflags:\n{flag_text}\n\n'
          'Try --helpfull to get a list of all flags.')


def command_line() -> str:
  """The command that started this run, as the user typed it (for manifests)."""
  return _command_line


def run(main: Callable[[list[str]], int | None],
        interrupted: str | Callable[[], str] = INTERRUPTED,
        argv: Sequence[str] | None = None, doc: str | None = None,
        program: str | None = None) -> None:
  """`app.run(main)` with the one error path of the module docstring.

  Args:
    main: the script's main function.
    interrupted: the line printed on Ctrl-C, saying what was kept, or a
      function that makes it from the parsed flags.
    argv: the command line (default `sys.argv`); tests pass their own.
    doc: the text `--help` prints above the flags (default: the docstring of
      the module defining `main`).
    program: the program as the user typed it, e.g. `tfprune sweep` (default:
      `python experiments/<script>`), for `command_line`.
  """
  global _command_line
  if signal.getsignal(signal.SIGINT) is _interrupted_while_importing:
    signal.signal(signal.SIGINT, signal.default_int_handler)
  argv = list(sys.argv if argv is None else argv)
  if program is None:
    program = f'python experiments/{pathlib.Path(argv[0]).name}'
  _command_line = shlex.join([*shlex.split(program), *argv[1:]])
  asked = _help_asked(argv)
  if asked:
    if doc is None:
      doc = getattr(sys.modules.get(main.__module__), '__doc__', None)
    try:
      print(help_text(main, doc, full=asked == 'full'), flush=True)
    except BrokenPipeError:  # `tfprune sweep --help | head`
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)

  def interrupted_line() -> str:
    if not callable(interrupted):
      return one_line(interrupted)
    try:
      return one_line(interrupted())
    except flags.Error:  # interrupted before the flags were parsed
      return INTERRUPTED

  def guarded(args: list[str]) -> int | None:
    if len(args) > 1:
      print(f'error: unexpected arguments {one_line(args[1:])}: pass options '
            'as --flag=value', file=sys.stderr)
      return EXIT_BAD_INPUT
    if not flags.FLAGS['verbosity'].present:
      # TensorFlow's Python INFO lines (SavedModel, TFLite converter) are noise
      # here; --verbosity=0 brings them back.
      logging.set_verbosity(logging.WARNING)
    try:
      status = main(args)
    except TfpruneError as e:
      print(f'error: {one_line(e)}', file=sys.stderr)
      return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
      print(interrupted_line(), file=sys.stderr)
      return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except Exception as e:  # pylint: disable=broad-except
      if _DEBUG.value:
        traceback.print_exc()
      message = one_line(e, limit=200) or 'no message'
      print(f'error: internal error {type(e).__name__}: {message}: rerun with '
            '--debug for the traceback', file=sys.stderr)
      return EXIT_INTERNAL
    finished.append(True)
    return status

  finished = []
  previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    app.run(guarded, argv=argv, flags_parser=_parse_flags)
  except KeyboardInterrupt as e:  # during flag parsing or absl's start-up
    print(interrupted_line(), file=sys.stderr)
    sys.exit(EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED)
  finally:
    if finished:
      # The process ends next (`run` exits): a Ctrl-C or SIGTERM while absl,
      # TensorFlow and Ray shut down must not end in silence, and the line
      # says the results are whole.
      signal.signal(signal.SIGINT, _interrupted_after_run)
      signal.signal(signal.SIGTERM, _interrupted_after_run)
    else:
      signal.signal(signal.SIGTERM, previous_term)
