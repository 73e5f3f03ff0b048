"""One Python object per id in each interpreter, as PEP 734 has it (``Interpreter(3) is
Interpreter(3)``): the cache that Interpreter and Queue share."""

import threading as _threading
import weakref as _weakref


class ObjectsById:
    """Live objects by id; an object goes when nothing else refers to it."""

    def __init__(self):
        self._objects = _weakref.WeakValueDictionary()
        self._lock = _threading.Lock()

    def get_or_make(self, id, make):
        """The object for `id`, made by make(id) under the lock if there is none.

        TypeError for an id that is not an int (bool included, as an int subclass, is taken as
        its int value).
        """
        if not isinstance(id, int):
            raise TypeError(f'id must be an int, got {id!r}')
        id = int(id)
        with self._lock:
            obj = self._objects.get(id)
            if obj is None:
                obj = make(id)
                self._objects[id] = obj
            return obj
