"""`python -m tfprune <command>`: the same as the `tfprune` command."""

from tfprune import commands

if __name__ == '__main__':
  commands.main()
