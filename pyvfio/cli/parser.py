"""The argument parser every pyvfio command line uses, and the options more than one
command has, each added here once so that it means one thing everywhere
(docs/vocabulary.md; tests/test_vocabulary.py walks the parsers against it).

A usage error is one line ("pyvfio run: argument -l/--loops: ...: see pyvfio run
--help") and exit 2, raised as a UsageError for the entry point to print, instead of
argparse's usage block.  An old spelling keeps working for one release, with one
notice line on stderr naming the new one (notice)."""

import argparse
import sys

from ..errors import UsageError
from ..results import STDOUT
from ..vocabulary import OLD_POLICY, words


def notice(old, new):
    """The one line that tells a user an option's new spelling."""
    print(f"pyvfio: notice: {old} is now {new}; the old spelling goes in the next release",
          file=sys.stderr)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.was_flag = {}   # option -> (the value a bare one means, is_value(token))

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}", f"see {self.prog} --help")

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._bare(args) if self.was_flag else args, namespace)

    def _bare(self, args):
        """An option that was a flag and now takes a value, given bare (no value
        after it), is read as the old flag meant: `OPTION VALUE`, with the notice."""
        out = []
        for i, token in enumerate(args):
            if token == "--":
                return out + args[i:]
            out.append(token)
            if token in self.was_flag:
                value, is_value = self.was_flag[token]
                following = args[i + 1] if i + 1 < len(args) else None
                if following is None or not is_value(following):
                    notice(token, f"{token} {value}")
                    out.append(value)
        return out


class OldSpelling(argparse.Action):
    """A renamed option's old name: does what the new one does, after the notice.
    Hidden from --help; the vocabulary test knows it by this class."""

    append = False          # a repeatable option: renamed(..., repeatable=True)

    def __init__(self, option_strings, dest, new, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        notice(option_string, self.new)
        if self.nargs == 0:
            setattr(namespace, self.dest, self.const)
        elif self.append:
            setattr(namespace, self.dest, (getattr(namespace, self.dest) or []) + [values])
        else:
            setattr(namespace, self.dest, values)


def renamed(p, old, new, dest, repeatable=False, **kwargs):
    """`old` keeps working as `new` (same dest) for one release."""
    action = p.add_argument(old, dest=dest, action=OldSpelling, new=new, **kwargs)
    action.append = repeatable
    return action


def _json_value(token):
    """After a --json that was a flag: a FILE, or the command's own BDF (an old
    `doctor --json 0000:01:00.0`), or another option."""
    if token == STDOUT:
        return True
    if token.startswith("-"):
        return False
    from ..errors import PyvfioError
    from ..host.pci import parse_bdf
    try:
        parse_bdf(token)
    except PyvfioError:
        return True
    return False


def add_json(p, what, was_flag=False):
    """--json FILE: write `what` as JSON to FILE, atomically, `-` for standard output
    (then the human text goes to stderr).  `was_flag`: the command's --json printed
    on stdout without a value until now; a bare one still does, with the notice."""
    if was_flag:
        p.was_flag["--json"] = (STDOUT, _json_value)
    return p.add_argument("--json", metavar="FILE",
                          help=f"write {what} as JSON to FILE (atomically; - for standard output)")


def vocabulary_type(vocabulary, old=None, repeatable=False):
    """An argparse `type=` taking a word of `vocabulary` (an enum; `old` maps old words
    to new ones, with the notice); `repeatable`: a comma-separated list of them,
    returned as given (the caller splits it).  Its `vocabulary` attribute is what the
    vocabulary test reads."""
    allowed = words(vocabulary)
    old = old or {}

    def one(word, option):
        if word in old:
            notice(f"{option} {word}", f"{option} {old[word]}")
            return str(old[word])
        if word not in allowed:
            raise argparse.ArgumentTypeError(f"invalid choice: {word!r} (choose from {', '.join(allowed)})")
        return word

    def parse(text):
        if not repeatable:
            return one(text, parse.option)
        return ",".join(one(w.strip(), parse.option) for w in text.split(",") if w.strip())

    parse.__name__ = vocabulary.__name__.lower()
    parse.vocabulary = allowed
    parse.old = old
    parse.option = None
    return parse


def add_choice(p, option, vocabulary, help, repeatable=False, old=None, **kwargs):
    """An option (a name, or a tuple of its names) whose values are the words of an
    enum of pyvfio.vocabulary, the same in every command; `repeatable`: repeatable
    and comma-separated (a selection)."""
    names = (option,) if isinstance(option, str) else option
    option = names[0]
    kind = vocabulary_type(vocabulary, old, repeatable)
    action = p.add_argument(*names, type=kind, metavar=vocabulary.__name__.upper(),
                            action="append" if repeatable else "store", help=help, **kwargs)
    kind.option = option
    return action


def add_policy(p, help, repeatable=False, **kwargs):
    """--policy kernel|lazy|unlazy (`default`, lab's old word for kernel, still read)."""
    from ..vocabulary import Policy
    return add_choice(p, "--policy", Policy, help, repeatable, old=OLD_POLICY, **kwargs)


def add_nointxmask(p, help, was_flag=False, **kwargs):
    """--nointxmask 0|1: vfio-pci's module parameter.  `was_flag`: a bare one (the
    old flag) means 1, with the notice."""
    if was_flag:
        p.was_flag["--nointxmask"] = ("1", lambda token: token in ("0", "1"))
    return p.add_argument("--nointxmask", type=int, choices=(0, 1), metavar="0|1", help=help, **kwargs)
