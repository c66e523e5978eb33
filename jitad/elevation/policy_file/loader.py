"""Reading a policy file's YAML: the size limit, a strict loader, and line numbers for every problem.

Problems are reported as ``line N: path: message``; the loader refuses duplicate keys,
aliases and deep nesting before anything is validated.
"""
from collections.abc import Hashable

import yaml
from django.conf import settings

# The schema nests five levels deep; anything much deeper is a mistake or an attack (PyYAML
# builds the tree recursively, so 50,000 levels would end in a RecursionError).
MAX_DEPTH = 20


class PolicyFileError(Exception):
    """The file was rejected; ``errors`` holds one ``line N: path: message`` string per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys, aliases and deep nesting.

    PyYAML keeps the last of two equal keys without a word, which would let a reviewer
    read one value while another is applied. Aliases are refused so every value a
    reviewer approves is written out where it applies (and no alias can recurse).
    Nesting stops at MAX_DEPTH collections, long before Python's recursion limit.
    """

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            problem = f"aliases (*{event.anchor}) are not allowed in a policy file; write the value out"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels (a policy file needs 5)"
            raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                break  # the base class reports the unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key (first defined on line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _child(node, part):
    """(child node, the mark of its key or item) one step down ``node``, or (None, None)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return value_node, key_node.start_mark
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part].start_mark
    return None, None


def _line(root, path: tuple) -> int:
    """The 1-based line of ``path``; a missing field points at the nearest line that exists."""
    node, line = root, root.start_mark.line
    for part in path:
        node, mark = _child(node, part)
        if node is None:
            break
        line = mark.line
    return line + 1


def _path_to_key(node, mark, path: tuple = ()) -> tuple | None:
    """The path of the mapping key that starts at ``mark``, searching the tree under ``node``."""
    if isinstance(node, yaml.MappingNode):
        # Only scalar keys make a readable path; a complex key is reported without one.
        children = [((*path, k.value), k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*path, i), None, v) for i, v in enumerate(node.value)]
    else:
        return None
    for child_path, key_node, value_node in children:
        if key_node is not None and key_node.start_mark.index == mark.index:
            return child_path
        found = _path_to_key(value_node, mark, child_path)
        if found is not None:
            return found
    return None


def _format_path(path: tuple) -> str:
    """``policies[0].duration.max_minutes`` for ("policies", 0, "duration", "max_minutes")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _yaml_error(e: yaml.YAMLError, text: str, root=None) -> str:
    """``line N: ...`` for a parse error, with the field path when the tree is known."""
    if isinstance(e, yaml.reader.ReaderError):  # a bad character: an offset, no mark
        line = text.count("\n", 0, e.position) + 1
        return f"line {line}: YAML error: {e.reason} (character #x{e.character:04x})"
    line = e.problem_mark.line + 1
    path = _path_to_key(root, e.problem_mark) if root is not None else None
    if path is not None:
        return f"line {line}: {_format_path(path)}: {e.problem}"
    return f"line {line}: YAML error: " + (f"{e.context}, {e.problem}" if e.context else e.problem)


def _parse(text: str):
    """(root node, data) of a one-document YAML text; raises PolicyFileError if it does not parse."""
    root = loader = None
    try:
        loader = StrictLoader(text)
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        raise PolicyFileError([_yaml_error(e, text, root)]) from e
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def _check_size(size: int, *, at_least: bool = False) -> None:
    """Refuse a file larger than JITAD_POLICY_MAX_BYTES before parsing it."""
    limit = settings.JITAD_POLICY_MAX_BYTES
    if size > limit:
        what = f"more than {limit:,} bytes" if at_least else f"{size:,} bytes"
        raise PolicyFileError([f"line 1: (top level): the file is {what}; the limit is {limit:,} bytes "
                               "(JITAD_POLICY_MAX_BYTES)"])
