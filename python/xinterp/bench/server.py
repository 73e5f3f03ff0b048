#!/usr/bin/env python3
"""The real-server benchmark: examples/http_server.py driven by wrk on loopback, offloading its
CPU-bound page renders to xinterp's InterpreterPoolExecutor, to a ThreadPoolExecutor (one GIL)
and to a ProcessPoolExecutor, side by side in one run.

Each backend's server runs in a subprocess of its own with --workers (default 2) workers; once
all answer, every run drives each of them in turn (the order rotates between runs) with
``wrk -t1 -c<connections> -d<seconds>s --latency`` on ``GET /report/7`` (about 10 ms of pure
Python per request, see examples/render_page.py). Reported per backend: requests/s, p50 and p99
latency (median, best, stdev over runs; Mann-Whitney p against xinterp), and the issue's goals:
xinterp >= 1.8x the thread version's requests/s, >= the process version's, with a lower p99.

wrk is a Debian package: ``apt-get install -y wrk`` (or ``tools/setup.sh``; macOS:
``brew install wrk``). The server script is looked for at --server, then in examples/ of the
source tree this package comes from, then of the current directory.

usage: python -m xinterp.bench.server [--runs N] [--fast] [--seconds S] [--connections C]
                                      [--workers W] [--server PATH] [--json PATH] [--markdown]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .stats import report, summary

BACKENDS = (('interp', 'xinterp'), ('thread', 'ThreadPoolExecutor'),
            ('process', 'ProcessPoolExecutor'))
URL_PATH = '/report/7'
QUIET_CPUS = 0.25  # a run is "quiet" when other processes used less CPU than this meanwhile
WRK_MISSING = ('wrk (the HTTP load generator) is not installed: on Debian/Ubuntu run '
               '`apt-get install -y wrk` (as root), or tools/setup.sh; on macOS `brew install '
               'wrk`')


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def find_server(given):
    if given is not None:
        return Path(given)
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / 'examples' / 'http_server.py',
                      Path.cwd() / 'examples' / 'http_server.py'):
        if candidate.is_file():
            return candidate
    return None


class ServerProcess:
    """One backend's server, in a subprocess; its stderr goes to a temporary file."""

    def __init__(self, script, backend, workers):
        self.backend = backend
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), '--backend', backend, '--workers', str(workers),
             '--port', '0'], stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.url = None

    def wait_ready(self, timeout=120):
        """Reads the 'listening on' line, then checks that the server answers a page."""
        line = self.proc.stdout.readline()  # printed once the workers are warm
        m = re.search(r'listening on (http://\S+)', line)
        if not m:
            raise RuntimeError(f'{self.backend} server did not start: {line!r}\n'
                               f'{self.stderr_text()}')
        self.url = m.group(1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + URL_PATH, timeout=30) as r:
                    if r.status == 200:
                        return r.read()
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)  # polling a server that does not answer yet

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors='replace')

    def stop(self, timeout=60):
        """SIGTERM, then its exit status and what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        text = self.stderr_text()
        self.stderr.close()
        return self.proc.returncode, text


_UNIT = {'us': 1e-3, 'ms': 1.0, 's': 1e3, 'm': 60e3}


def _ms(text):
    m = re.fullmatch(r'([\d.]+)(us|ms|s|m)', text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_wrk(out):
    """{'rps', 'p50', 'p99' (ms), 'requests', 'errors'} from wrk --latency output."""
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    p50 = _ms(re.search(r'^\s+50%\s+(\S+)', out, re.M).group(1))
    p99 = _ms(re.search(r'^\s+99%\s+(\S+)', out, re.M).group(1))
    requests = int(re.search(r'(\d+) requests in', out).group(1))
    errors = 0
    m = re.search(r'Non-2xx or 3xx responses:\s+(\d+)', out)
    if m:
        errors += int(m.group(1))
    m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return {'rps': rps, 'p50': p50, 'p99': p99, 'requests': requests, 'errors': errors}


def _busy_ticks():
    """Clock ticks all CPUs spent busy so far (Linux /proc/stat), or None."""
    try:
        with open('/proc/stat') as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # all but idle and iowait


def _tree_ticks(root):
    """Clock ticks used so far by process `root` and its descendants (all their threads)."""
    procs = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except (OSError, IndexError):
                continue
            procs[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(procs[p][1] for p in tree if p in procs)


def _children_seconds():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_wrk(wrk, server, seconds, connections):
    """wrk's figures, plus 'others': the CPUs (on average) that processes other than the
    server, its workers and wrk used during the run (None where /proc cannot tell)."""
    # When wrk stops, the requests it had in flight are still being rendered (up to one per
    # connection): give the server that moment, so that it does not overlap the next run.
    time.sleep(1.0)
    busy0, tree0, wrk0, t0 = _busy_ticks(), None, _children_seconds(), time.monotonic()
    if busy0 is not None:
        tree0 = _tree_ticks(server.proc.pid)
    out = subprocess.run([wrk, '-t1', f'-c{connections}', f'-d{seconds}s', '--latency',
                          '--timeout', '30s', server.url + URL_PATH],
                         capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
    res = parse_wrk(out)
    res['others'] = None
    if busy0 is not None:
        hz = os.sysconf('SC_CLK_TCK')
        elapsed = time.monotonic() - t0
        used = (_busy_ticks() - busy0 - (_tree_ticks(server.proc.pid) - tree0)) / hz
        used -= _children_seconds() - wrk0
        res['others'] = max(0.0, used / elapsed)
    return res


def handler_ms(script, n=20):
    """Median ms of one render_page.render() in this process (the work per request)."""
    sys.path.insert(0, str(script.parent))
    try:
        import render_page
    finally:
        sys.path.pop(0)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        render_page.render(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return summary(times)[0]


def goals(results):
    """The issue's goals, worded so that each ratio reads right both ways."""
    med = {(r['case'], r['impl']): summary(r['samples'])[0] for r in results}
    lines = []
    x_rps, t_rps, p_rps = (med[('requests/s', n)] for _, n in BACKENDS)
    x99, t99, p99 = (med[('latency p99', n)] for _, n in BACKENDS)
    r = x_rps / t_rps
    lines.append(f'goal: xinterp >= 1.8x the ThreadPoolExecutor requests/s: xinterp serves '
                 f'{r:.2f}x its requests/s (it serves {1 / r:.2f}x xinterp\'s): '
                 f'{"met" if r >= 1.8 else "NOT met"}')
    r = x_rps / p_rps
    lines.append(f'goal: xinterp >= the ProcessPoolExecutor requests/s: xinterp serves '
                 f'{r:.2f}x its requests/s (it serves {1 / r:.2f}x xinterp\'s): '
                 f'{"met" if r >= 1 else "NOT met"}')
    for name, other in (('ThreadPoolExecutor', t99), ('ProcessPoolExecutor', p99)):
        word = (f'{other / x99:.2f}x lower than' if x99 <= other
                else f'{x99 / other:.2f}x higher than')
        lines.append(f'goal: xinterp p99 < the {name} p99: xinterp {x99:.1f} ms is {word} '
                     f'its {other:.1f} ms: {"met" if x99 < other else "NOT met"}')
    return lines


def run(args):
    wrk = shutil.which('wrk')
    if wrk is None:
        progress(WRK_MISSING)
        return None
    script = find_server(args.server)
    if script is None or not script.is_file():
        progress('examples/http_server.py not found: run from the source tree or pass --server')
        return None
    runs = args.runs if args.runs is not None else (3 if args.fast else 5)
    seconds = args.seconds if args.seconds is not None else (3 if args.fast else 10)
    progress(f'server benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, '
             f'{args.workers} workers, wrk -t1 -c{args.connections} -d{seconds}s, {runs} runs')
    load_before = os.getloadavg()
    servers = {}
    try:
        pages = {}
        for backend, _ in BACKENDS:  # started one after another: start-up is CPU-heavy
            servers[backend] = ServerProcess(script, backend, args.workers)
            pages[backend] = servers[backend].wait_ready()
            progress(f'  {backend}: {servers[backend].url}')
        if len(set(pages.values())) != 1:
            raise RuntimeError('the backends answered different pages')
        for backend, _ in BACKENDS:  # warm-up: connections, caches, the workers' first pages
            run_wrk(wrk, servers[backend], 1, args.connections)
        samples = {backend: [] for backend, _ in BACKENDS}
        for k in range(runs):
            order = BACKENDS[k % len(BACKENDS):] + BACKENDS[:k % len(BACKENDS)]
            for backend, name in order:
                res = run_wrk(wrk, servers[backend], seconds, args.connections)
                samples[backend].append(res)
                progress(f'  run {k + 1}/{runs} {name}: {res["rps"]:.1f} req/s, '
                         f'p50 {res["p50"]:.1f} ms, p99 {res["p99"]:.1f} ms'
                         + (f', {res["errors"]} errors' if res['errors'] else '')
                         + ('' if res['others'] is None else
                            f' (other processes used {res["others"]:.2f} CPUs)'))
    finally:
        exits = {backend: s.stop() for backend, s in servers.items()}
    load_after = os.getloadavg()
    results = []
    for case, key, unit, high in (('requests/s', 'rps', 'req/s', True),
                                  ('latency p50', 'p50', 'ms', False),
                                  ('latency p99', 'p99', 'ms', False)):
        for backend, name in BACKENDS:
            results.append({'case': case, 'impl': name, 'unit': unit, 'higher_is_better': high,
                            'samples': [s[key] for s in samples[backend]]})
    notes = goals(results)
    others = [s['others'] for b, _ in BACKENDS for s in samples[b] if s['others'] is not None]
    if others:
        notes.append(f'CPU used by processes other than the server and wrk during the runs '
                     f'(of {os.cpu_count()}): median {summary(others)[0]:.2f}, max '
                     f'{max(others):.2f}')
        quiet = {b: [s for s in samples[b] if s['others'] is not None
                     and s['others'] < QUIET_CPUS] for b, _ in BACKENDS}
        if all(quiet.values()):
            notes.append(f'runs where other processes used < {QUIET_CPUS} CPU: '
                         + ', '.join(f'{len(quiet[b])} {n}' for b, n in BACKENDS)
                         + '; their medians:')
            notes += ['  ' + line for line in goals(
                [{'case': case, 'impl': n, 'samples': [s[key] for s in quiet[b]]}
                 for case, key in (('requests/s', 'rps'), ('latency p99', 'p99'))
                 for b, n in BACKENDS])]
        else:
            notes.append(f'not every backend had a run with other processes under '
                         f'{QUIET_CPUS} CPU: no quiet-run comparison')
    errors = {name: sum(s['errors'] for s in samples[b]) for b, name in BACKENDS}
    notes.append('wrk errors (non-2xx and socket errors) over all runs: '
                 + ', '.join(f'{n} {e}' for n, e in errors.items()))
    notes.append(f'work per request: render_page.render() takes {handler_ms(script):.1f} ms '
                 'here, alone in this process')
    notes.append(f'load average (1, 5, 15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} '
                 f'{load_before[2]:.2f}, after: {load_after[0]:.2f} {load_after[1]:.2f} '
                 f'{load_after[2]:.2f} (other work on the machine skews the numbers)')
    for backend, (rc, err) in exits.items():
        if rc != 0 or err.strip():
            notes.append(f'{backend} server exited with status {rc}; its stderr: {err.strip()}')
    return results, notes


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m xinterp.bench.server',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=None, help='runs per backend (5; --fast: 3)')
    ap.add_argument('--fast', '--quick', action='store_true',
                    help='3 runs of 3 s per backend (well under a minute of load)')
    ap.add_argument('--seconds', type=int, default=None, help='seconds per wrk run (10)')
    ap.add_argument('--connections', type=int, default=16)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--server', help='path of examples/http_server.py')
    ap.add_argument('--json', type=Path)
    ap.add_argument('--markdown', action='store_true')
    args = ap.parse_args(argv)
    out = run(args)
    if out is None:
        return 2
    results, notes = out
    report(results, notes, args.markdown, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
