"""The CPU-bound request handler of examples/http_server.py: an orders report page rendered in
pure Python (about 10 ms of bytecode per page, no I/O).

``render(seed)`` builds ``ROWS`` order records from a small deterministic generator, aggregates
them by region and customer, sorts them, and renders the totals and the largest ``LISTED``
orders through a tiny template engine (tokenized with a regular expression, parsed into a tree,
rendered with HTML escaping), the work a web handler does with Jinja or Django templates. The same seed gives the same bytes in every backend, in
every process, on every run.

It lives in a module of its own, apart from the server, so that a worker (an interpreter, a
thread or a process) imports only this, not asyncio and the server: functions are sent to
workers by reference (module and name), and a new xinterp interpreter starts with its
creator's ``sys.path``, which has this folder in it.
"""

import html
import re

ROWS = 6000    # orders generated and aggregated per page
LISTED = 120   # of which the page lists the largest

CUSTOMERS = ('Ada & Co', 'Babbage <Engines>', "O'Brien Freight", 'Zuse "Z3" GmbH',
             'Hopper Navy Yard', 'Lovelace Analytics', 'Turing Ltd', 'Knuth Press')
PRODUCTS = ('gear', 'punch card', 'relay', 'valve', 'core memory', 'tape reel', 'drum')
REGIONS = ('north', 'south', 'east', 'west')

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Orders report {{ report }}</title></head>
<body>
<h1>Orders report {{ report }}</h1>
<p>{{ count }} orders, {{ total }} in all; largest order: {{ largest.id }} ({{ largest.amount }})</p>
<h2>By region</h2>
<table>
<tr><th>region</th><th>orders</th><th>total</th></tr>
{% for r in regions %}<tr><td>{{ r.name }}</td><td>{{ r.orders }}</td><td>{{ r.total }}</td></tr>
{% end %}</table>
<h2>Top customers</h2>
<ol>
{% for c in customers %}<li>{{ c.name }}: {{ c.total }}</li>
{% end %}</ol>
<h2>Largest {{ listed }} orders</h2>
<table>
<tr><th>#</th><th>customer</th><th>product</th><th>qty</th><th>unit</th><th>amount</th></tr>
{% for o in orders %}<tr><td>{{ o.id }}</td><td>{{ o.customer }}</td><td>{{ o.product }}</td><td>{{ o.qty }}</td><td>{{ o.unit }}</td><td>{{ o.amount }}</td></tr>
{% end %}</table>
</body></html>
"""

_TOKEN = re.compile(r'({{.*?}}|{%.*?%})', re.S)


def parse(template):
    """The template as a tree: str (text), ('var', path) and ('for', name, path, body)."""
    root = []
    stack = [root]
    for token in _TOKEN.split(template):
        if token.startswith('{{'):
            stack[-1].append(('var', token[2:-2].strip().split('.')))
        elif token.startswith('{%'):
            words = token[2:-2].split()
            if words[0] == 'for' and len(words) == 4 and words[2] == 'in':
                block = []
                stack[-1].append(('for', words[1], words[3].split('.'), block))
                stack.append(block)
            elif words == ['end'] and len(stack) > 1:
                stack.pop()
            else:
                raise ValueError(f'bad template tag {token!r}')
        elif token:
            stack[-1].append(token)
    if len(stack) != 1:
        raise ValueError('unclosed {% for %}')
    return root


def _lookup(context, path):
    value = context[path[0]]
    for key in path[1:]:
        value = value[key]
    return value


def _render(nodes, context, out):
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == 'var':
            out.append(html.escape(str(_lookup(context, node[1]))))
        else:
            _, name, path, body = node
            inner = dict(context)
            for item in _lookup(context, path):
                inner[name] = item
                _render(body, inner, out)


def money(cents):
    return f'{cents // 100:,}.{cents % 100:02d}'


def orders(seed, n=ROWS):
    """n order records from a linear congruential generator seeded with `seed`."""
    x = (seed * 2654435761 + 1) & 0x7FFFFFFF
    out = []
    for i in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        qty = 1 + x % 17
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        unit = 50 + x % 20000
        out.append({'id': f'{seed}-{i:04d}', 'customer': CUSTOMERS[(x >> 8) % len(CUSTOMERS)],
                    'product': PRODUCTS[(x >> 12) % len(PRODUCTS)],
                    'region': REGIONS[(x >> 16) % len(REGIONS)], 'qty': qty, 'cents': qty * unit,
                    'unit_cents': unit})
    return out


def render(seed):
    """The report page for `seed`, as UTF-8 bytes."""
    rows = orders(seed)
    by_region, by_customer = {}, {}
    for o in rows:
        r = by_region.setdefault(o['region'], [0, 0])
        r[0] += 1
        r[1] += o['cents']
        by_customer[o['customer']] = by_customer.get(o['customer'], 0) + o['cents']
    largest = max(rows, key=lambda o: (o['cents'], o['id']))
    context = {
        'report': seed,
        'count': len(rows),
        'total': money(sum(o['cents'] for o in rows)),
        'largest': {'id': largest['id'], 'amount': money(largest['cents'])},
        'regions': [{'name': k, 'orders': v[0], 'total': money(v[1])}
                    for k, v in sorted(by_region.items())],
        'customers': [{'name': k, 'total': money(v)}
                      for k, v in sorted(by_customer.items(), key=lambda kv: (-kv[1], kv[0]))[:5]],
        'listed': LISTED,
        'orders': [{'id': o['id'], 'customer': o['customer'], 'product': o['product'],
                    'qty': o['qty'], 'unit': money(o['unit_cents']), 'amount': money(o['cents'])}
                   for o in sorted(rows, key=lambda o: (-o['cents'], o['id']))[:LISTED]],
    }
    out = []
    _render(parse(PAGE), context, out)
    return ''.join(out).encode()
