"""``--cfg-options`` parsing that also takes ``key="dict(a=1, b='x')"``.

mmengine's DictAction parses lists and tuples but not ``dict(...)``: it recursed until ``RecursionError``. Here a
value that starts with ``dict(`` or ``{`` is read as a Python literal (literal values, lists, tuples, nested
dicts; nothing is executed) and *replaces* the key's value (:func:`apply_cfg_options`), as assigning it in a
config file would, also where the config had None. Anything else goes to DictAction unchanged. A malformed value
gets a message naming the key and the syntax.
"""
import ast
import os.path as osp
from argparse import ArgumentError

from mmengine.config import Config, DictAction

DICT_SYNTAX = ('--cfg-options key="dict(type=\'Pretrained\', checkpoint=\'ckpts/x.pth\')" (quotes around the '
               'value for the shell; strings inside in single quotes), or one key per field: '
               'key.type=Pretrained key.checkpoint=ckpts/x.pth')


def _literal(node):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError('dict(**x) is not supported')
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant):
        return node.value
    raise ValueError(f'{ast.unparse(node)!r} is not a literal (strings need quotes)')


class ReplaceValue:
    """A ``--cfg-options`` value that replaces the key's value instead of being merged into it."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f'ReplaceValue({self.value!r})'


def parse_dict_value(key: str, text: str) -> dict:
    """``text`` = ``dict(...)`` or ``{...}`` as a dict; ValueError naming ``key`` and the syntax otherwise."""
    try:
        value = _literal(ast.parse(text.strip(), mode='eval').body)
    except (SyntaxError, ValueError) as err:
        raise ValueError(f'--cfg-options {key}: cannot read {text!r} as a dict ({err}). Syntax: {DICT_SYNTAX}') \
            from None
    if not isinstance(value, dict):
        raise ValueError(f'--cfg-options {key}: {text!r} is not a dict. Syntax: {DICT_SYNTAX}')
    return value


class CfgOptionsAction(DictAction):
    """DictAction that also reads ``key=dict(...)`` / ``key={...}`` values (see the module doc)."""

    def __call__(self, parser, namespace, values, option_string=None):
        plain, dicts = [], {}
        for kv in values:
            key, sep, text = kv.partition('=')
            if sep and text.lstrip().startswith(('dict(', '{')):
                try:
                    dicts[key] = ReplaceValue(parse_dict_value(key, text))
                except ValueError as err:
                    raise ArgumentError(self, str(err)) from None
            else:
                plain.append(kv)
        super().__call__(parser, namespace, plain, option_string)
        options = getattr(namespace, self.dest) or {}
        options.update(dicts)
        setattr(namespace, self.dest, options)


def apply_cfg_options(cfg, options) -> None:
    """Apply parsed ``--cfg-options`` to ``cfg``: merged as mmengine does, :class:`ReplaceValue` ones assigned."""
    if not options:
        return
    cfg.merge_from_dict({k: v for k, v in options.items() if not isinstance(v, ReplaceValue)})
    for key, value in options.items():
        if not isinstance(value, ReplaceValue):
            continue
        *parents, last = key.split('.')
        node = cfg
        for i, part in enumerate(parents):
            try:
                node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise KeyError(f'--cfg-options {key}: the config has no `{".".join(parents[:i + 1])}`') from None
        if isinstance(node, list):
            node[int(last)] = value.value
        else:
            node[last] = value.value


def load_config(path: str, options=None) -> Config:
    """The config file at ``path`` with parsed ``--cfg-options`` applied (:func:`apply_cfg_options`).

    Raises:
        FileNotFoundError: naming ``path`` when it is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    apply_cfg_options(cfg, options)
    return cfg
