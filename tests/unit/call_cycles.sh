#!/bin/sh
# call_cycles.sh: no two of the shim's files (shim/*.c, common/*.c) call each other, and no
# longer cycle runs through several; the task*.c files count as one, the task table.
#
# It reads the built objects of the build directory it runs in (make check runs it there,
# after building vmshim): each object's defined functions and the symbols it needs (nm), so a
# call through a callback pointer is not a call, which is how a lower file reports upwards
# (docs/ARCHITECTURE.md, "Calls between files"). Shared data such as the `shim` context is not
# counted either. It prints every pair and cycle it finds and fails if there is one.
# A package build (make check-unit) may lack python3: then it skips, saying so.
if ! command -v python3 >/dev/null || ! command -v nm >/dev/null; then
	echo "SKIP: call_cycles.sh needs python3 and nm"
	exit 77
fi
exec python3 - "${1:-.}" <<'PY'
import glob, os, re, subprocess, sys

top = sys.argv[1]
objs = glob.glob(top + '/shim/vmshim-*.o') + glob.glob(top + '/common/*.o')
if not any('/shim/' in o for o in objs) or not any('/common/' in o for o in objs):
    print('call_cycles: no shim/ or common/ objects under %s: build vmshim first' % top)
    sys.exit(1)

def name(o):
    base = re.sub(r'^vmshim-', '', os.path.basename(o)[:-2])
    return ('shim/' if '/shim/' in o else 'common/') + base + '.c'

def unit(n):
    return 'shim/task*.c' if n.startswith('shim/task') else n

defs, uses = {}, {}
for o in objs:
    out = subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout
    d, u = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] == 'T':
            d.add(f[2])
        elif len(f) == 2 and f[0] == 'U':
            u.add(f[1])
    defs[name(o)], uses[name(o)] = d, u
owner = {s: unit(n) for n, d in defs.items() for s in d}
calls = {}
for n, u in uses.items():
    for s in u:
        if s in owner and owner[s] != unit(n):
            calls.setdefault(unit(n), {}).setdefault(owner[s], set()).add(s)

bad = 0
for a in sorted(calls):
    for b in sorted(calls[a]):
        if a < b and a in calls.get(b, {}):
            bad += 1
            print('%s calls %s: %s' % (a, b, ' '.join(sorted(calls[a][b]))))
            print('%s calls %s: %s' % (b, a, ' '.join(sorted(calls[b][a]))))

# Longer cycles: the strongly connected components of the call graph (Tarjan).
index, low, stack, on, comps = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in calls.get(v, {}):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 2 or (len(comp) == 2 and bad == 0):
            comps.append(sorted(comp))
for v in sorted(calls):
    if v not in index:
        visit(v)
for comp in comps:
    bad += 1
    print('call cycle among: ' + ' '.join(comp))
print('call_cycles: %d object(s), %d problem(s)' % (len(objs), bad))
sys.exit(1 if bad else 0)
PY
