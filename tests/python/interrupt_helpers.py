"""What the interrupt tests run inside interpreters (importable there by name). Each function
announces on `ready` that it is about to wait or spin, so the test interrupts it without a
sleep; an interrupt that lands just before the wait starts is raised all the same."""


def spin(ready):
    ready.put('running')
    while True:
        pass


def spin_and_report(ready):
    """Spins until interrupted; returns the exception's type name and args."""
    try:
        ready.put('running')  # in the try: an interrupt may land as soon as it is announced
        while True:
            pass
    except BaseException as e:  # noqa: BLE001 - the point is to see what arrived
        return type(e).__name__, e.args


def get_forever(ready, q):
    ready.put('waiting')
    return q.get()


def put_forever(ready, q):
    """q is full: the put waits."""
    ready.put('waiting')
    q.put('late')


def recv_forever(ready, recv):
    ready.put('waiting')
    return recv.recv()


def send_and_wait(ready, send):
    """A rendezvous send: waits until a receiver takes the item."""
    ready.put('waiting')
    send.send('rendezvous')


def sleep_then_return(ready, seconds):
    import time
    ready.put('sleeping')
    time.sleep(seconds)
    return 'slept'


def sleep_beside_a_spinning_thread(ready, seconds):
    """Another thread of this interpreter runs bytecode (so it runs the pending call) while the
    calling thread sleeps in C: the interrupt is handed over to the calling thread."""
    import threading
    import time
    stop = threading.Event()
    spinning = threading.Event()

    def spinner():
        spinning.set()
        while not stop.is_set():
            pass
    t = threading.Thread(target=spinner)
    t.start()
    spinning.wait()
    try:
        ready.put('sleeping')
        time.sleep(seconds)
        while True:
            pass
    finally:
        stop.set()
        t.join()


def call_into(other, ready):
    """Calls into interpreter `other` (which spins); reports a plain failure of that call."""
    import xinterp
    try:
        other.call(spin, ready)
    except xinterp.ExecutionFailed as e:
        return 'plain ExecutionFailed: ' + e.excinfo.type.__name__
    return 'returned'


class NotRebuildable(Exception):
    """Pickles in the sender, but its rebuild fails in the target."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise LookupError('cannot rebuild this exception here')
