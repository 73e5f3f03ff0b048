#!/usr/bin/env python3
"""An asyncio HTTP/1.1 server that renders every page in a worker pool: xinterp's
interpreters, threads or processes, chosen with --backend.

    python examples/http_server.py --backend interp --workers 2 --port 8080
    curl http://127.0.0.1:8080/report/7

Backends (each behind ``loop.run_in_executor``, nothing else differs):

    interp   xinterp.InterpreterPoolExecutor: a warm sub-interpreter per worker, each with its
             own GIL, in this process (pages render in parallel, results come back as bytes)
    thread   concurrent.futures.ThreadPoolExecutor: one GIL for the workers and the event loop
    process  concurrent.futures.ProcessPoolExecutor (forkserver, or --start-method spawn)

Routes: ``GET /report/<seed>`` answers ``render_page.render(seed)`` (about 10 ms of pure
Python, see examples/render_page.py) rendered in a worker; ``GET /health`` answers ``ok`` from
the event loop itself. Connections are kept alive (HTTP/1.1; ``Connection: close`` and HTTP/1.0
close after the response). Once the workers are warm it prints ``listening on
http://HOST:PORT`` on stdout (``--port 0`` picks a free port); SIGINT or SIGTERM stop it: the
listening socket and open connections are closed, the pool is shut down with
``cancel_futures=True`` (xinterp interrupts a render still running) and it exits with status 0.

Why no web framework: the example needs no dependency beyond the standard library (and xinterp),
and nothing sits between the event loop and the executor being measured, so that
``python -m xinterp.bench.server`` compares the three executors and not a framework's overhead.
The HTTP handling is deliberately small (no chunked request bodies, no pipelining beyond
answering requests in order); use a real server for anything else.
"""

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import signal
import sys

import render_page

MAX_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 1 << 20
REASONS = {200: 'OK', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed',
           413: 'Content Too Large', 500: 'Internal Server Error'}


def make_executor(backend, workers, start_method):
    if backend == 'interp':
        import xinterp
        return xinterp.InterpreterPoolExecutor(max_workers=workers)
    if backend == 'thread':
        return concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    if backend == 'process':
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(start_method))
    raise ValueError(f'unknown backend {backend!r}')


def response(status, body, content_type='text/plain; charset=utf-8', close=False):
    head = (f'HTTP/1.1 {status} {REASONS[status]}\r\n'
            f'Content-Type: {content_type}\r\n'
            f'Content-Length: {len(body)}\r\n'
            f'Connection: {"close" if close else "keep-alive"}\r\n\r\n')
    return head.encode('latin-1') + body


class Server:
    def __init__(self, executor):
        self.executor = executor
        self.connections = {}  # each connection's task: its writer
        self.stopping = False

    async def route(self, method, target):
        if target == '/health':
            return 200, b'ok\n', 'text/plain; charset=utf-8'
        if target.startswith('/report/'):
            try:
                seed = int(target[len('/report/'):])
            except ValueError:
                return 404, b'no such report\n', 'text/plain; charset=utf-8'
            if not 0 <= seed < 1 << 32:
                return 404, b'no such report\n', 'text/plain; charset=utf-8'
            loop = asyncio.get_running_loop()
            page = await loop.run_in_executor(self.executor, render_page.render, seed)
            return 200, page, 'text/html; charset=utf-8'
        return 404, b'not found\n', 'text/plain; charset=utf-8'

    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.connections[task] = writer
        try:
            if not self.stopping:  # (a connection accepted just before the stop ends at once)
                await self.converse(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            # The client went away, or the server is stopping (it cancels every connection's
            # task). Not raised on: asyncio 3.12.1's stream callback reports a handler task that
            # ends cancelled as an error.
            pass
        finally:
            del self.connections[task]
            writer.close()

    async def converse(self, reader, writer):
        """Answers the requests of one connection, in order, until it closes."""
        while True:
            try:
                request = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away
            except (ValueError, asyncio.LimitOverrunError) as exc:
                writer.write(response(400, f'{exc}\n'.encode(), close=True))
                return
            if request is None:
                return  # closed between requests
            method, target, version, headers = request
            connection = headers.get('connection', '').lower()
            close = connection == 'close' or (version == 'HTTP/1.0' and
                                              connection != 'keep-alive')
            if method not in ('GET', 'HEAD'):
                status, body, ctype = 405, b'GET only\n', 'text/plain; charset=utf-8'
            else:
                try:
                    status, body, ctype = await self.route(method, target)
                except Exception as exc:  # noqa: BLE001 - the handler failed: a 500
                    status, body = 500, f'{type(exc).__name__}: {exc}\n'.encode()
                    ctype = 'text/plain; charset=utf-8'
            data = response(status, body, ctype, close)
            if method == 'HEAD':
                data = data[:len(data) - len(body)]
            writer.write(data)
            await writer.drain()
            if close:
                return


async def read_request(reader):
    """(method, target, version, {lower-case header: value}), or None at a clean end of stream.
    A body (Content-Length) is read and dropped."""
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b'\n') or len(line) > MAX_LINE:
        raise ValueError('bad request line')
    parts = line.decode('latin-1').split()
    if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
        raise ValueError('bad request line')
    headers = {}
    while True:
        line = await reader.readline()
        if not line.endswith(b'\n'):
            raise asyncio.IncompleteReadError(line, None)
        if line in (b'\r\n', b'\n'):
            break
        if len(headers) >= MAX_HEADERS:
            raise ValueError('too many headers')
        name, sep, value = line.decode('latin-1').partition(':')
        if not sep:
            raise ValueError('bad header line')
        headers[name.strip().lower()] = value.strip()
    if 'transfer-encoding' in headers:
        raise ValueError('chunked request bodies are not supported')
    length = headers.get('content-length', '0')
    if not length.isdigit() or int(length) > MAX_BODY:
        raise ValueError('bad Content-Length')
    if int(length):
        await reader.readexactly(int(length))
    return parts[0], parts[1], parts[2], headers


async def serve(args):
    executor = make_executor(args.backend, args.workers, args.start_method)
    loop = asyncio.get_running_loop()
    try:
        # Warm-up: start every worker and import the handler there before taking requests.
        await asyncio.gather(*(loop.run_in_executor(executor, render_page.render, i)
                               for i in range(2 * args.workers)))
        app = Server(executor)
        server = await asyncio.start_server(app.handle, args.host, args.port, limit=MAX_LINE,
                                            reuse_address=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host, port = server.sockets[0].getsockname()[:2]
        print(f'listening on http://{host}:{port} (backend {args.backend}, '
              f'{args.workers} workers, pid {os.getpid()})', flush=True)
        async with server:
            await stop.wait()
            server.close()
            # Open connections end now: their tasks are cancelled, which cancels the renders
            # they await (an interpreter's render is interrupted, see InterpreterPoolExecutor).
            app.stopping = True
            tasks = list(app.connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--backend', choices=('interp', 'thread', 'process'), default='interp')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080, help='0: a free port (printed)')
    ap.add_argument('--start-method', choices=('forkserver', 'spawn'),
                    default='forkserver' if sys.platform != 'win32' else 'spawn',
                    help='how the process backend starts its workers')
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error('--workers must be at least 1')
    asyncio.run(serve(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
