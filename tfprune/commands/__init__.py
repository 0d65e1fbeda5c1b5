"""The `tfprune` command: one subcommand per tool, each a thin module here.

    tfprune sweep --model_file=my.keras --data=my.npz --levels=0,50,90 --out_dir=runs/mine
    tfprune evaluate --export=runs/mine/pruned/weight-k90.npz --data=my.npz
    tfprune <command> --help

Each tool module defines its absl flags and a `main` that turns them into
one config and makes one library call. Only the chosen tool's module is
imported, so the tools' flags never meet (several define `--weights_dir`).
The scripts in experiments/ run the same mains (`run_script`).
"""

import importlib
import sys
from typing import Sequence

from tfprune import cli  # first: sets TensorFlow's log level
from tfprune import registry
from tfprune.errors import TfpruneError

# name: (module under tfprune.commands, what it does).
COMMANDS = {
    'sweep': ('sweep', 'prune a network at many levels with each method; '
              'accuracy, sizes, plots'),
    'evaluate': ('evaluate', 'score a pruned export, graph file or Keras model'),
    'gradual': ('gradual', 'prune while fine-tuning (gradual or iterative) '
                'against one-shot'),
    'structured': ('structured', 'dense vs channel-pruned compacted Keras models: '
                   'parameters, MACs, size, latency'),
    'sensitivity': ('sensitivity', "scan each layer's sensitivity to pruning "
                    '(for --allocation=sensitivity)'),
    'benchmark': ('benchmark', 'time pruned networks against the dense one, '
                  'alternating, in one run'),
    'train': ('train', 'train a registry model and save it as a weight folder'),
    'plot': ('plot', "redraw a sweep's plots from its sweep.csv"),
    'holdout': ('holdout', 'write a validation .npz of training examples held '
                'out from calibration'),
    'engines': ('engines', 'gradual pruning of the MLP through TF-MOT and '
                'tfprune.keras (TF, JAX): accuracy, zeros, seconds per epoch'),
}
ALIASES = {'finetune': 'gradual'}


def usage() -> str:
  """`tfprune --help`: the commands and what each does."""
  width = max(map(len, COMMANDS))
  lines = ['usage: tfprune <command> [--flag=value ...]', '',
           'Prune Keras networks, measure what was removed and what it costs.',
           '', 'commands:']
  lines += [f'  {name:<{width}}  {summary}'
            for name, (_, summary) in COMMANDS.items()]
  lines += ['', 'aliases: ' + ', '.join(f'{a} = {n}' for a, n in ALIASES.items()),
            '', "Run 'tfprune <command> --help' for a command's flags and "
            'examples.']
  return '\n'.join(lines)


def run_command(name: str, argv: Sequence[str], program: str,
                doc: str | None = None) -> None:
  """Runs tool `name`'s main through `cli.run`; ends the process.

  Args:
    name: a key of `COMMANDS`.
    argv: the command line, program first.
    program: the program as the user typed it (`tfprune sweep`).
    doc: the `--help` text above the flags (default: the tool's docstring).
  """
  cli.quiet_start()
  module = importlib.import_module(f'{__name__}.{COMMANDS[name][0]}')
  cli.run(module.main, getattr(module, 'interrupted', cli.INTERRUPTED),
          argv=argv, doc=doc, program=program)


def run_script(name: str, doc: str | None) -> None:
  """The body of experiments/<script>.py: tool `name` with the script's docstring."""
  script = f'python experiments/{sys.argv[0].rsplit("/", 1)[-1]}'
  run_command(name, sys.argv, script, doc)


def main(argv: Sequence[str] | None = None) -> None:
  """The `tfprune` console entry point (and `python -m tfprune`)."""
  args = list(sys.argv[1:] if argv is None else argv)
  if args and args[0] in ('-h', '--help', '-help', 'help'):
    print(usage())
    sys.exit(0)
  if args and args[0] == '--version':
    from tfprune import __version__  # pylint: disable=import-outside-toplevel
    print(f'tfprune {__version__}')
    sys.exit(0)
  try:
    if not args or args[0].startswith('-'):
      raise TfpruneError(
          f'no command given{f" before {args[0]}" if args else ""}: choose one '
          f'of {", ".join(COMMANDS)} (tfprune --help describes them)')
    given = registry.check_choice(args[0], [*COMMANDS, *ALIASES], 'command')
  except TfpruneError as e:
    print(f'error: {cli.one_line(e)}', file=sys.stderr)
    sys.exit(cli.EXIT_BAD_INPUT)
  name = ALIASES.get(given, given)
  run_command(name, [f'tfprune {args[0]}', *args[1:]], f'tfprune {args[0]}')
