"""examples/http_server.py, the server of python -m xinterp.bench.server: for every backend it
starts on a free port, answers pages equal to render_page.render() in this process on one
kept-alive connection, answers errors as such, and stops cleanly on SIGTERM (exit status 0,
nothing on stderr). No timing is asserted and wrk is not needed."""

import http.client
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / 'examples'
sys.path.insert(0, str(EXAMPLES))
try:
    import render_page  # noqa: E402 - the handler the server runs in its workers
finally:
    sys.path.remove(str(EXAMPLES))

START_TIMEOUT = 120


def read_line_within(stream, timeout):
    """The next line of stream, or '' if none came within timeout seconds (the reader thread
    is left blocked only if the process hangs, which the caller then kills)."""
    box = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ''


@pytest.fixture(params=['interp', 'thread', 'process'])
def server(request):
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / 'http_server.py'), '--backend', request.param,
         '--workers', '2', '--port', '0'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONFAULTHANDLER='1'))
    try:
        line = read_line_within(proc.stdout, START_TIMEOUT)
        assert line.startswith('listening on http://127.0.0.1:'), (line, proc.poll())
        port = int(line.split()[2].rsplit(':', 1)[1])
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_serves_pages_keeps_alive_and_stops_cleanly(server):
    proc, port = server
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    for seed in (7, 0, 123456, 7):  # all on one kept-alive connection
        conn.request('GET', f'/report/{seed}')
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        assert r.getheader('Content-Type') == 'text/html; charset=utf-8'
        assert r.getheader('Connection') == 'keep-alive'
        assert body == render_page.render(seed)
    conn.request('GET', '/health')
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b'ok\n')
    for path in ('/nowhere', '/report/x', f'/report/{1 << 40}'):
        conn.request('GET', path)
        r = conn.getresponse()
        r.read()
        assert r.status == 404, path
    conn.request('POST', '/report/7', body=b'{"ignored": true}')
    r = conn.getresponse()
    assert (r.status, r.read()) == (405, b'GET only\n')
    conn.request('GET', '/report/3', headers={'Connection': 'close'})
    r = conn.getresponse()
    assert r.getheader('Connection') == 'close'
    assert r.read() == render_page.render(3)
    conn.close()

    # Two connections at once, each served (the workers render in parallel or in turn).
    conns = [http.client.HTTPConnection('127.0.0.1', port, timeout=60) for _ in range(2)]
    for c in conns:
        c.request('GET', '/report/42')
    for c in conns:
        assert c.getresponse().read() == render_page.render(42)
    # ... and one still open when the server is told to stop: it is closed, not waited for.
    rc, _, err = stop(proc)
    assert rc == 0, err
    assert err == '', err
    for c in conns:
        c.close()


def test_bad_request_line_is_a_400_and_closes(server):
    proc, port = server
    import socket
    with socket.create_connection(('127.0.0.1', port), timeout=60) as s:
        s.sendall(b'NONSENSE\r\n\r\n')
        data = b''
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b'HTTP/1.1 400 Bad Request\r\n'), data
    rc, _, err = stop(proc)
    assert (rc, err) == (0, '')


def test_stops_cleanly_with_requests_in_flight(server):
    # Requests sent and not yet answered when SIGTERM comes: the renders still running are
    # interrupted (interp), abandoned (process) or finished (thread); the exit stays clean.
    proc, port = server
    import socket
    socks = [socket.create_connection(('127.0.0.1', port), timeout=60) for _ in range(4)]
    for k, s in enumerate(socks):
        s.sendall(f'GET /report/{k} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
    rc, _, err = stop(proc)
    assert (rc, err) == (0, '')
    for s in socks:
        s.close()
