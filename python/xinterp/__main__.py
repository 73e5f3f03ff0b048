"""python -m xinterp {demo,bench}"""
import sys

USAGE = '''usage: python -m xinterp COMMAND [options]

commands:
  demo     count words of a large in-memory text on interpreters with their own GIL, with
           zero-copy slices, beside one interpreter and multiprocessing (the main job)
  bench    the benchmark suite: xinterp beside CPython's own modules and multiprocessing

"python -m xinterp COMMAND --help" for a command's options.'''


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == 'demo':
        from .demo import main as run
    elif cmd == 'bench':
        from .bench import main as run
    else:
        print(f'unknown command {cmd!r}\n\n{USAGE}', file=sys.stderr)
        return 2
    return run(rest)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
