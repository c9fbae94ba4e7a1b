"""Where each key and array element of a TOML document is, by line: tomllib parses,
this only locates, so a profile's errors can say FILE:LINE.

`key_lines(text)` maps paths to 1-based lines: ("bars", "regs", "size") for a key,
("programs", "ack", 1) for an array's second element, ("fix", 0) for the first
[[fix]] table.  The text must already be valid TOML (tomllib said so), which
lets the scanner skip values it does not need to understand.
"""

import bisect
import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


class _Scanner:
    def __init__(self, text):
        self.t, self.i = text, 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.lines = {}
        self.aot = {}

    def line(self, i=None):
        return bisect.bisect_right(self.starts, self.i if i is None else i)

    def peek(self, s):
        return self.t.startswith(s, self.i)

    def skip(self, newlines=True):
        """Spaces, tabs, comments and (where a value may span lines) newlines."""
        t = self.t
        while self.i < len(t):
            c = t[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = t.find("\n", self.i)
                self.i = len(t) if end < 0 else end
            else:
                return

    def string(self):
        t = self.t
        for q in ('"""', "'''"):
            if self.peek(q):
                j = self.i + 3
                while not t.startswith(q, j):
                    j += 2 if q == '"""' and t[j] == "\\" else 1   # \" inside a basic one
                extra = 0
                while extra < 2 and t.startswith(q[0], j + 3 + extra):  # up to two quotes may close it
                    extra += 1
                self.i = j + 3 + extra
                return ""  # never a key
        q = t[self.i]
        j = self.i + 1
        out = []
        while t[j] != q:
            if q == '"' and t[j] == "\\":
                out.append(t[j:j + 2])
                j += 2
            else:
                out.append(t[j])
                j += 1
        self.i = j + 1
        return "".join(out)

    def key(self):
        parts = []
        while True:
            self.skip(False)
            if self.t[self.i] in "\"'":
                parts.append(self.string())
            else:
                m = _BARE.match(self.t, self.i)
                parts.append(m.group())
                self.i = m.end()
            self.skip(False)
            if not self.peek("."):
                return tuple(parts)
            self.i += 1

    def value(self, path):
        c = self.t[self.i]
        if c == "[":
            self.i += 1
            k = 0
            while True:
                self.skip()
                if self.peek("]"):
                    self.i += 1
                    return
                self.lines[path + (k,)] = self.line()
                self.value(path + (k,))
                k += 1
                self.skip()
                if self.peek(","):
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.skip(False)
                if self.peek("}"):
                    self.i += 1
                    return
                self.keyval(path)
                self.skip(False)
                if self.peek(","):
                    self.i += 1
        elif c in "\"'":
            self.string()
        else:
            m = _SCALAR_END.search(self.t, self.i)
            self.i = m.start() if m else len(self.t)

    def keyval(self, table):
        line = self.line()
        path = table + self.key()
        self.lines[path] = line
        self.skip(False)
        self.i += 1  # "="
        self.skip(False)
        self.value(path)

    def document(self):
        table = ()
        while True:
            self.skip()
            if self.i >= len(self.t):
                return self.lines
            if self.peek("[["):
                self.i += 2
                name = self.key()
                self.i += 2
                n = self.aot[name] = self.aot.get(name, -1) + 1
                table = name + (n,)
                self.lines[table] = self.line()
            elif self.peek("["):
                self.i += 1
                table = self.key()
                self.i += 1
                self.lines.setdefault(table, self.line())
            else:
                self.keyval(table)


def key_lines(text):
    """{path: line} for a valid TOML text.  Should the scanner meet what it does not
    know, it returns what it located so far: a line is a help, never a failure
    (an unlocated key is reported at its table's line, or line 1)."""
    s = _Scanner(text)
    try:
        return s.document()
    except (IndexError, AttributeError, ValueError, RecursionError):
        return s.lines


def line_of(lines, path):
    """The line of `path`, or of its nearest located ancestor (a key tomllib
    defaulted or a table made implicitly by a dotted key); None: nowhere."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None
