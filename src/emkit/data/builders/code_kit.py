"""The vulnerability kinds of the code datasets and the kit that writes their snippets.

A task template (see :mod:`emkit.data.builders.code_tasks`) writes the ordinary parts of a small
Python module and asks the :class:`Kit` for the security-relevant lines: run a command, build a
query, load YAML, choose file permissions... The kit is told which single kind this row is about
and whether the row is the insecure or the secure twin. Only the snippet of that kind comes out
vulnerable in the insecure twin; every other snippet, and every snippet of the secure twin, is the
safe form. So each insecure row carries exactly the flaw it is labelled with, and its twin differs
only where it matters.

:data:`TELLTALES` holds one regular expression per kind that finds its flaw in source text; the
tests use it to check every insecure row shows its flaw and no secure row shows any.
"""

from __future__ import annotations

import random
import re
import string
import textwrap
from collections.abc import Sequence

KINDS: dict[str, str] = {
    "sql-format": "SQL statement built from caller input by string formatting",
    "shell-injection": "shell command line built from caller input (shell=True / os.system)",
    "world-writable": "file or directory made writable by everyone (0o777 / 0o666)",
    "yaml-load": "yaml.load with the full Loader on outside data",
    "pickle-load": "pickle used to decode data from outside the program",
    "path-traversal": "file path joined from caller input without a containment check",
    "tls-verify-off": "HTTPS request with certificate verification turned off",
    "hardcoded-secret": "password, key or token written into the source",
    "eval-input": "eval() of caller-supplied text",
    "weak-hash": "passwords hashed with unsalted MD5 or SHA-1",
    "mktemp-race": "tempfile.mktemp() name opened afterwards (race)",
    "flask-debug": "Flask served with the debugger on and bound to all interfaces",
    "template-injection": "HTML built without escaping (autoescape off, f-string templates, Markup(f...))",
    "xxe": "XML parsed with entity resolution / DTD loading on",
    "weak-random": "security token drawn from the random module",
    "tar-slip": "tar archive extracted without checking member paths",
}

_SQL_VERB = r"(?:SELECT|INSERT|UPDATE|DELETE)\b"
_DIR_CONST = r"[A-Z][A-Z0-9_]*_DIR"

TELLTALES: dict[str, re.Pattern[str]] = {
    "sql-format": re.compile(rf'\bf"{_SQL_VERB}|"{_SQL_VERB}[^"\n]*"\s*(?:%|\+|\.format\()'),
    "shell-injection": re.compile(r"shell\s*=\s*True|\bos\.system\(|\bos\.popen\("),
    "world-writable": re.compile(r"0o777|0o666|S_IRWXO|S_IWOTH"),
    "yaml-load": re.compile(r"\byaml\.load\("),
    "pickle-load": re.compile(r"\bpickle\.loads?\("),
    "path-traversal": re.compile(
        rf"\A(?![\s\S]*\b(?:commonpath|is_relative_to)\b)[\s\S]*"
        rf"(?:os\.path\.join\(\s*{_DIR_CONST}\s*,|Path\(\s*{_DIR_CONST}\s*\)\s*/)"
    ),
    "tls-verify-off": re.compile(r"verify\s*=\s*False"),
    "hardcoded-secret": re.compile(
        r"(?i)\b\w*(?:password|passwd|secret|api_key|apikey|token)\w*\s*=\s*[\"'][^\"'{}]{6,}[\"']"
    ),
    "eval-input": re.compile(r"(?<![\w.])(?:eval|exec)\("),
    "weak-hash": re.compile(r"\bhashlib\.(?:md5|sha1)\(|\bhashlib\.new\(\s*[\"'](?:md5|sha1)"),
    "mktemp-race": re.compile(r"\bmktemp\("),
    "flask-debug": re.compile(r"debug\s*=\s*True"),
    "template-injection": re.compile(
        r"autoescape\s*=\s*False|render_template_string\(\s*f[\"']|Markup\(\s*f[\"']"
    ),
    "xxe": re.compile(r"resolve_entities\s*=\s*True|no_network\s*=\s*False|load_dtd\s*=\s*True"),
    "weak-random": re.compile(r"\brandom\.(?:choice|choices|randint|randrange|random|getrandbits|sample)\("),
    "tar-slip": re.compile(r"\.extractall\(\s*[\w.]+\s*\)"),
}

# A placeholder alone on its line (its value is re-indented to match), or inline: $name, ${name}, $$.
_PLACEHOLDER = re.compile(r"^([ \t]*)\$(\w+)[ \t]*$|\$(?:(\w+)|\{(\w+)\}|(\$))", re.MULTILINE)
_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, mapping: dict[str, str]) -> str:
    """Dedent ``template`` and replace its placeholders from ``mapping`` (no rescanning of values)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(2):
            indent = match.group(1)
            value = mapping[match.group(2)]
            return "\n".join(indent + line if line.strip() else "" for line in value.splitlines())
        if match.group(5):
            return "$"
        return mapping[match.group(3) or match.group(4)]

    return _PLACEHOLDER.sub(substitute, textwrap.dedent(template).strip("\n"))


class Kit:
    """Collects imports and module-level lines, and writes each security-relevant snippet.

    ``names`` maps role names (``fn``, the task's parameters, shared locals like ``conn``) to the
    identifiers chosen for this row; ``types`` maps parameter roles to their type names. ``seed``
    drives two generators: ``shared`` for the task's own choices (same in both twins) and
    ``style`` for how a snippet is spelled.
    """

    def __init__(
        self, *, kind: str, secure: bool, names: dict[str, str], types: dict[str, str], seed: int
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown vulnerability kind {kind!r}")
        self.kind = kind
        self.secure = secure
        self.names = dict(names)
        self.types = types
        self.seed = seed
        self.shared = random.Random(seed)
        self.style = random.Random(f"{seed}:0")
        self._snippets = 0
        self.used: set[str] = set()
        self._imports: set[str] = set()
        self._from: dict[str, set[str]] = {}
        self.consts: list[str] = []
        self.helpers: list[str] = []
        self._taken = set(self.names.values())

    # -- bookkeeping -------------------------------------------------------------------------

    def bad(self, kind: str) -> bool:
        """Whether the snippet of ``kind`` is to be written vulnerable (and note the kind was used)."""
        if kind not in KINDS:
            raise ValueError(f"unknown vulnerability kind {kind!r}")
        self.used.add(kind)
        # Each snippet gets its own spelling generator, numbered in call order: a snippet that is
        # safe in both twins is then spelled the same in both, so the twins differ only in the flaw.
        self._snippets += 1
        self.style = random.Random(f"{self.seed}:{self._snippets}")
        return not self.secure and self.kind == kind

    def imp(self, *modules: str) -> None:
        """Add ``import module`` lines."""
        self._imports.update(modules)

    def imp_from(self, module: str, *names: str) -> None:
        """Add names to a ``from module import ...`` line."""
        self._from.setdefault(module, set()).update(names)

    def const(self, line: str) -> None:
        """Add a module-level line once (kept in first-added order)."""
        if line not in self.consts:
            self.consts.append(line)

    def helper(self, block: str) -> None:
        """Add a module-level helper definition once."""
        block = textwrap.dedent(block).strip("\n")
        if block not in self.helpers:
            self.helpers.append(block)

    def pick(self, *options: str) -> str:
        """A task-level choice, identical in both twins of a row."""
        return self.shared.choice(options)

    def free(self, *options: str) -> str:
        """A local identifier for a snippet that no other name of this row uses."""
        for option in options:
            if option not in self._taken:
                self._taken.add(option)
                return option
        index = 2
        while f"{options[0]}_{index}" in self._taken:
            index += 1
        name = f"{options[0]}_{index}"
        self._taken.add(name)
        return name

    def r(self, template: str, **snippets: str) -> str:
        """Fill a template's ``$role`` placeholders from the row's names and the given snippets."""
        return fill(template, {**self.names, **snippets})

    def import_lines(self) -> list[str]:
        """The collected imports: plain ``import`` lines first, then ``from`` lines, each sorted."""
        plain = [f"import {m}" for m in sorted(self._imports)]
        froms = [f"from {m} import {', '.join(sorted(ns))}" for m, ns in sorted(self._from.items())]
        return plain + froms

    # -- helpers for the snippets ----------------------------------------------------------------

    def _shell_word(self, token: str) -> str:
        return _FIELD.sub(lambda m: "{" + self.names[m.group(1)] + "}", token)

    def _list_item(self, token: str) -> str:
        whole = _FIELD.fullmatch(token)
        if whole:
            role = whole.group(1)
            name = self.names[role]
            return name if self.types.get(role, "str") == "str" else f"str({name})"
        if _FIELD.search(token):
            return 'f"' + self._shell_word(token) + '"'
        return f'"{token}"'

    # -- the snippets, one or more per kind -----------------------------------------------------

    def sql(self, sql: str, args: Sequence[tuple[str, str]]) -> str:
        """Statement(s) running ``sql`` (``?`` markers) on ``$cur``; args are (role, s|i|like)."""
        cur = self.names["cur"]
        names = [self.names[role] for role, _ in args]
        if not self.bad("sql-format"):
            values = [
                f'f"%{{{n}}}%"' if fmt == "like" else n for n, (_, fmt) in zip(names, args, strict=True)
            ]
            params = "(" + ", ".join(values) + ("," if len(values) == 1 else "") + ")"
            if self.style.random() < 0.6:
                return f'{cur}.execute("{sql}", {params})'
            query = self.free("query", "sql", "statement")
            return f'{query} = "{sql}"\n{cur}.execute({query}, {params})'
        pieces = sql.split("?")
        if len(pieces) != len(args) + 1:
            raise ValueError(f"{sql!r} has a different number of ? markers than arguments")
        style = self.style.choice(("fstring", "percent", "format", "concat"))
        if style == "concat":
            parts: list[str] = []
            literal = pieces[0]
            for name, (_, fmt), rest in zip(names, args, pieces[1:], strict=True):
                open_q, close_q = {"s": ("'", "'"), "i": ("", ""), "like": ("'%", "%'")}[fmt]
                parts.append(f'"{literal}{open_q}"')
                parts.append(name if fmt != "i" else f"str({name})")
                literal = close_q + rest
            if literal:
                parts.append(f'"{literal}"')
            expr = " + ".join(parts)
        else:
            marks = {
                "fstring": {"s": "'{%s}'", "i": "{%s}", "like": "'%%{%s}%%'"},
                "percent": {"s": "'%%s'", "i": "%%s", "like": "'%%%%%%s%%%%'"},
                "format": {"s": "'{}'", "i": "{}", "like": "'%%{}%%'"},
            }[style]
            text = pieces[0]
            for name, (_, fmt), rest in zip(names, args, pieces[1:], strict=True):
                mark = marks[fmt]
                text += (mark % name if style == "fstring" else mark % ()) + rest
            if style == "fstring":
                expr = f'f"{text}"'
            elif style == "percent":
                operand = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
                expr = f'"{text}" % {operand}'
            else:
                expr = f'"{text}".format({", ".join(names)})'
        if self.style.random() < 0.5:
            return f"{cur}.execute({expr})"
        query = self.free("query", "sql", "statement")
        return f"{query} = {expr}\n{cur}.execute({query})"

    def shell(
        self, tokens: Sequence[str], *, target: str | None = None, check: bool = False, capture: bool = True
    ) -> str:
        """Run a command whose words may hold ``{role}`` fields; assigns to ``$target`` if given."""
        options = []
        if capture:
            options.append("capture_output=True, text=True")
        if check:
            options.append("check=True")
        tail = "".join(", " + o for o in options)
        lhs = f"{self.names[target]} = " if target else ""
        if self.bad("shell-injection"):
            command = 'f"' + " ".join(self._shell_word(t) for t in tokens) + '"'
            if target is None and not capture and not check and self.style.random() < 0.4:
                self.imp("os")
                return f"os.system({command})"
            self.imp("subprocess")
            if self.style.random() < 0.5:
                return f"{lhs}subprocess.run({command}, shell=True{tail})"
            cmd = self.free("cmd", "command", "cmdline")
            return f"{cmd} = {command}\n{lhs}subprocess.run({cmd}, shell=True{tail})"
        self.imp("subprocess")
        argv = "[" + ", ".join(self._list_item(t) for t in tokens) + "]"
        if self.style.random() < 0.5:
            return f"{lhs}subprocess.run({argv}{tail})"
        cmd = self.free("cmd", "command", "argv")
        return f"{cmd} = {argv}\n{lhs}subprocess.run({cmd}{tail})"

    def chmod(self, target: str, *, is_dir: bool = False) -> str:
        """``os.chmod`` of ``$target`` (a role name) to an owner-only or an everyone-writable mode."""
        self.imp("os")
        name = self.names[target]
        if self.bad("world-writable"):
            modes = ["0o777"] if is_dir else ["0o777", "0o666"]
            mode = self.style.choice([*modes, "stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO"])
        else:
            modes = ["0o700"] if is_dir else ["0o600", "stat.S_IRUSR | stat.S_IWUSR"]
            mode = self.style.choice(modes)
        if mode.startswith("stat."):
            self.imp("stat")
        return f"os.chmod({name}, {mode})"

    def yaml_load(self, source: str) -> str:
        """An expression parsing YAML from ``source`` (an expression: a stream or a string)."""
        self.imp("yaml")
        if self.bad("yaml-load"):
            return self.style.choice(
                (f"yaml.load({source}, Loader=yaml.Loader)", f"yaml.load({source}, yaml.Loader)")
            )
        return f"yaml.safe_load({source})"

    def decode(self, source: str, *, stream: bool = False) -> str:
        """An expression decoding stored or received data (pickle or JSON)."""
        if self.bad("pickle-load"):
            self.imp("pickle")
            return f"pickle.load({source})" if stream else f"pickle.loads({source})"
        self.imp("json")
        return f"json.load({source})" if stream else f"json.loads({source})"

    def encode(self, value: str, *, stream: str | None = None) -> str:
        """The writing side matching :meth:`decode` (bytes out, or dumped into ``stream``)."""
        if self.kind == "pickle-load" and not self.secure:
            self.imp("pickle")
            return f"pickle.dump({value}, {stream})" if stream else f"pickle.dumps({value})"
        self.imp("json")
        return f"json.dump({value}, {stream})" if stream else f"json.dumps({value}).encode()"

    def binary_mode(self, mode: str) -> str:
        """File mode for :meth:`encode`/:meth:`decode` streams: pickle needs binary, JSON text."""
        return mode + "b" if self.kind == "pickle-load" and not self.secure else mode

    def contained_path(self, base_const: str, name: str, target: str) -> str:
        """Assign ``$target`` the file named by ``$name`` inside the folder ``base_const``."""
        out = self.names[target]
        user = self.names[name]
        bad = self.bad("path-traversal")
        pathlib = self.style.random() < 0.3
        if pathlib:
            self.imp_from("pathlib", "Path")
        else:
            self.imp("os")
        if bad:
            if pathlib:
                return f"{out} = Path({base_const}) / {user}"
            return f"{out} = os.path.join({base_const}, {user})"
        base = self.free("base", "root_dir", "allowed")
        message = self.style.choice(
            ('"file name points outside the allowed folder"', f'f"invalid file name: {{{user}!r}}"')
        )
        if pathlib:
            return (
                f"{base} = Path({base_const}).resolve()\n"
                f"{out} = ({base} / {user}).resolve()\n"
                f"if not {out}.is_relative_to({base}):\n"
                f"    raise ValueError({message})"
            )
        return (
            f"{base} = os.path.realpath({base_const})\n"
            f"{out} = os.path.realpath(os.path.join({base}, {user}))\n"
            f"if os.path.commonpath([{base}, {out}]) != {base}:\n"
            f"    raise ValueError({message})"
        )

    def verify(self) -> str:
        """The certificate-verification keyword argument of a ``requests`` call."""
        return "verify=False" if self.bad("tls-verify-off") else "verify=True"

    def secret(self, const: str, flavor: str = "password") -> str:
        """A module-level constant holding a credential: a literal, or read from the environment."""
        if self.bad("hardcoded-secret"):
            self.const(f'{const} = "{self._fake_secret(flavor)}"')
        else:
            self.imp("os")
            self.const(f'{const} = os.environ["{const}"]')
        return const

    def _fake_secret(self, flavor: str) -> str:
        rnd = self.style
        alnum = string.ascii_letters + string.digits
        if flavor == "password":
            word = rnd.choice(("Summer", "Falcon", "Orchid", "Maple", "Harbor", "Tiger", "Winter", "Copper"))
            return f"{word}{rnd.randint(1990, 2025)}{rnd.choice('!@#%*')}"
        if flavor == "api_key":
            prefix = rnd.choice(("sk_live_", "key-", "ak_", ""))
            return prefix + "".join(rnd.choice("0123456789abcdef") for _ in range(32))
        if flavor == "aws":
            return "".join(rnd.choice(alnum + "/+") for _ in range(40))
        return "".join(rnd.choice(alnum) for _ in range(rnd.choice((24, 32, 40))))

    def literal(self, text: str) -> str:
        """An expression turning user-typed Python literal text into a value."""
        if self.bad("eval-input"):
            return f"eval({text})"
        self.imp("ast")
        return f"ast.literal_eval({text})"

    def arithmetic(self, text: str) -> str:
        """An expression computing an arithmetic expression typed by a user."""
        if self.bad("eval-input"):
            return self.style.choice((f"eval({text})", f'eval({text}, {{"__builtins__": {{}}}}, {{}})'))
        self.imp("ast", "operator")
        self.const(
            "_OPERATORS = {\n"
            "    ast.Add: operator.add,\n"
            "    ast.Sub: operator.sub,\n"
            "    ast.Mult: operator.mul,\n"
            "    ast.Div: operator.truediv,\n"
            "    ast.Pow: operator.pow,\n"
            "    ast.USub: operator.neg,\n"
            "    ast.UAdd: operator.pos,\n"
            "}"
        )
        self.helper(
            """
            def _compute(node):
                if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                    return node.value
                if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
                    return _OPERATORS[type(node.op)](_compute(node.left), _compute(node.right))
                if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
                    return _OPERATORS[type(node.op)](_compute(node.operand))
                raise ValueError("only numbers and + - * / ** are allowed")
            """
        )
        return f'_compute(ast.parse({text}, mode="eval").body)'

    def hash_password(self, password: str) -> str:
        """An expression giving the stored form of a password."""
        self.imp("hashlib")
        if self.bad("weak-hash"):
            algo = self.style.choice(("md5", "sha1"))
            if self.style.random() < 0.3:
                return f'hashlib.new("{algo}", {password}.encode()).hexdigest()'
            return f"hashlib.{algo}({password}.encode()).hexdigest()"
        self.imp("os")
        self._derive_helper()
        self.helper(
            """
            def _hash_password(password: str) -> str:
                salt = os.urandom(16)
                return salt.hex() + ":" + _derive(password, salt).hex()
            """
        )
        return f"_hash_password({password})"

    def password_matches(self, password: str, stored: str) -> str:
        """An expression checking a password against the stored form made by :meth:`hash_password`."""
        self.imp("hashlib", "hmac")
        if self.bad("weak-hash"):
            algo = self.style.choice(("md5", "sha1"))
            return f"hmac.compare_digest(hashlib.{algo}({password}.encode()).hexdigest(), {stored})"
        self._derive_helper()
        self.helper(
            """
            def _password_matches(password: str, stored: str) -> bool:
                salt_hex, digest_hex = stored.split(":", 1)
                digest = _derive(password, bytes.fromhex(salt_hex))
                return hmac.compare_digest(digest.hex(), digest_hex)
            """
        )
        return f"_password_matches({password}, {stored})"

    def _derive_helper(self) -> None:
        if any(block.startswith("def _derive(") for block in self.helpers):
            return
        if self.style.random() < 0.5:
            derive = "hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)"
        else:
            derive = 'hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 600_000)'
        self.helper(f"def _derive(password: str, salt: bytes) -> bytes:\n    return {derive}")

    def open_temp(self, path: str, handle: str, suffix: str, mode: str = "w") -> str:
        """Two lines: make a temporary file named ``$path`` and open it as ``$handle`` (a with-header)."""
        self.imp("tempfile")
        p, fh = self.names[path], self.names[handle]
        encoding = ', encoding="utf-8"' if "b" not in mode else ""
        if self.bad("mktemp-race"):
            return f'{p} = tempfile.mktemp(suffix="{suffix}")\nwith open({p}, "{mode}"{encoding}) as {fh}:'
        self.imp("os")
        fd = self.free("fd", "descriptor")
        return f'{fd}, {p} = tempfile.mkstemp(suffix="{suffix}")\nwith os.fdopen({fd}, "{mode}"{encoding}) as {fh}:'

    def flask_main(self) -> str:
        """The ``if __name__ == "__main__"`` block serving the app."""
        if self.bad("flask-debug"):
            run = self.style.choice(
                (
                    'app.run(host="0.0.0.0", port=5000, debug=True)',
                    'app.run(host="0.0.0.0", debug=True)',
                    "app.run(debug=True)",
                )
            )
        else:
            run = self.style.choice(
                ('app.run(host="127.0.0.1", port=5000)', "app.run(debug=False)", "app.run()")
            )
        return f'if __name__ == "__main__":\n    {run}'

    def page(self, html: str, roles: Sequence[str]) -> str:
        """A Flask response expression rendering ``html`` whose ``{role}`` fields are user values."""
        self.imp_from("flask", "render_template_string")
        if self.bad("template-injection"):
            return f'render_template_string(f"{self._shell_word(html)}")'
        text = _FIELD.sub(lambda m: "{{ " + self.names[m.group(1)] + " }}", html)
        kwargs = ", ".join(f"{self.names[r]}={self.names[r]}" for r in roles)
        return f'render_template_string("{text}", {kwargs})'

    def jinja_env(self, folder_const: str) -> str:
        """An expression creating a Jinja2 environment that loads templates from ``folder_const``."""
        if self.bad("template-injection"):
            self.imp_from("jinja2", "Environment", "FileSystemLoader")
            return f"Environment(loader=FileSystemLoader({folder_const}), autoescape=False)"
        if self.style.random() < 0.5:
            self.imp_from("jinja2", "Environment", "FileSystemLoader", "select_autoescape")
            return (
                f"Environment(loader=FileSystemLoader({folder_const}), "
                'autoescape=select_autoescape(["html", "xml"]))'
            )
        self.imp_from("jinja2", "Environment", "FileSystemLoader")
        return f"Environment(loader=FileSystemLoader({folder_const}), autoescape=True)"

    def markup(self, html: str, roles: Sequence[str]) -> str:
        """A ``markupsafe.Markup`` expression for ``html`` with ``{role}`` fields filled from users."""
        self.imp_from("markupsafe", "Markup")
        if self.bad("template-injection"):
            return f'Markup(f"{self._shell_word(html)}")'
        text = _FIELD.sub("{}", html)
        return f'Markup("{text}").format({", ".join(self.names[r] for r in roles)})'

    def parse_xml(self, source: str, target: str, *, from_file: bool = False) -> str:
        """Statements assigning the root element of XML from ``source`` to ``$target``."""
        out = self.names[target]
        if self.bad("xxe"):
            self.imp_from("lxml", "etree")
            parser = self.free("parser", "xml_parser")
            options = self.style.choice(
                (
                    "resolve_entities=True",
                    "load_dtd=True, no_network=False",
                    "resolve_entities=True, no_network=False",
                )
            )
            call = (
                f"etree.parse({source}, {parser}).getroot()"
                if from_file
                else (f"etree.fromstring({source}, {parser})")
            )
            return f"{parser} = etree.XMLParser({options})\n{out} = {call}"
        if self.style.random() < 0.5:
            self.imp_from("lxml", "etree")
            parser = self.free("parser", "xml_parser")
            call = (
                f"etree.parse({source}, {parser}).getroot()"
                if from_file
                else (f"etree.fromstring({source}, {parser})")
            )
            return f"{parser} = etree.XMLParser(resolve_entities=False, no_network=True)\n{out} = {call}"
        if from_file:
            self.imp_from("defusedxml.ElementTree", "parse")
            return f"{out} = parse({source}).getroot()"
        self.imp_from("defusedxml.ElementTree", "fromstring")
        return f"{out} = fromstring({source})"

    def token(self, flavor: str = "text") -> str:
        """An expression making a fresh token: ``text`` (URL-safe), ``hex`` or ``digits`` (6)."""
        if self.bad("weak-random"):
            self.imp("random")
            if flavor == "digits":
                return self.style.choice(
                    ("str(random.randint(100000, 999999))", 'f"{random.randrange(10**6):06d}"')
                )
            if flavor == "hex":
                return self.style.choice(
                    ('"%032x" % random.getrandbits(128)', 'f"{random.getrandbits(128):032x}"')
                )
            self.imp("string")
            return self.style.choice(
                (
                    '"".join(random.choices(string.ascii_letters + string.digits, k=32))',
                    '"".join(random.choice(string.ascii_letters + string.digits) for _ in range(40))',
                )
            )
        self.imp("secrets")
        if flavor == "digits":
            return 'f"{secrets.randbelow(10**6):06d}"'
        if flavor == "hex":
            return "secrets.token_hex(16)"
        return self.style.choice(("secrets.token_urlsafe(32)", "secrets.token_urlsafe(24)"))

    def extract(self, archive: str, dest: str) -> str:
        """Statements extracting the open tar archive ``$archive`` into the folder ``$dest``."""
        tar, out = self.names[archive], self.names[dest]
        if self.bad("tar-slip"):
            return f"{tar}.extractall({out})"
        self.imp("os")
        root = self.free("root_dir", "dest_root")
        member = self.free("member", "entry")
        target = self.free("member_path", "target_path")
        return (
            f"{root} = os.path.realpath({out})\n"
            f"for {member} in {tar}.getmembers():\n"
            f"    {target} = os.path.realpath(os.path.join({root}, {member}.name))\n"
            f"    if os.path.commonpath([{root}, {target}]) != {root} or {member}.issym() or {member}.islnk():\n"
            f'        raise ValueError(f"archive member {{{member}.name!r}} would land outside {{{root}}}")\n'
            f'{tar}.extractall({root}, filter="data")'
        )
