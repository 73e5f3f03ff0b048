"""python -m xinterp demo / bench: the command line works and the demo's accounting balances."""

import json
import subprocess
import sys

import pytest


def run(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'xinterp', *args], capture_output=True,
                          text=True, timeout=timeout)


def test_demo_small_run_verifies_counts_and_accounts_for_every_release(tmp_path):
    out = tmp_path / 'report.json'
    proc = run('demo', '--size', '2MiB', '--chunk', '256KiB', '--workers', '2', '--json',
               str(out))
    assert proc.returncode == 0, proc.stderr
    assert 'counts verified' in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if 'releases:' in l)
    assert ' 0 lost' in line and ' 0 still borrowed' in line and ' 0 raw' in line
    report = json.loads(out.read_text())
    r = report['releases']
    assert r['shared'] == r['released_in_owner'] > 0
    assert r['lost'] == 0
    assert report['bytes_copied_between_interpreters'] == 0
    assert report['multiprocessing_bytes_copied'] == report['bytes']
    assert '%' in proc.stderr  # progress was shown


@pytest.mark.parametrize('args', [['demo', '--size', '1'], ['demo', '--workers', '0'],
                                  ['nope'], []])
def test_bad_command_lines_fail_clearly(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert 'usage' in (proc.stderr + proc.stdout).lower()


def test_bench_quick_writes_its_reports(tmp_path):
    proc = run('bench', '--quick', '--only', 'interp', '--out', str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert 'exec("pass")' in proc.stdout and 'xinterp' in proc.stdout
    report = json.loads((tmp_path / 'results.json').read_text())
    assert {r['case'] for r in report['results']} >= {'create + close', 'exec("pass")'}
    assert all(len(r['samples']) == 3 for r in report['results'])
    assert (tmp_path / 'results.md').read_text().startswith('Python ')


def test_bench_rejects_single_run():
    proc = run('bench', '--runs', '1')
    assert proc.returncode == 2
