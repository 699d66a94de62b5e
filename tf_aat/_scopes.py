"""NNCF's scope patterns, shared by every algorithm."""

import fnmatch
import re


def matches_scope(name, patterns):
    """NNCF scopes: `{re}pattern` is a regular expression, others are globs or names."""
    for pattern in patterns:
        if pattern.startswith("{re}"):
            if re.fullmatch(pattern[4:], name):
                return True
        elif fnmatch.fnmatchcase(name, pattern) or name == pattern:
            return True
    return False


def in_scope(name, ignored_scopes=(), target_scopes=()):
    """True when a layer called `name` is compressed: not ignored, and targeted if
    `target_scopes` is given."""
    if ignored_scopes and matches_scope(name, ignored_scopes):
        return False
    return not target_scopes or matches_scope(name, target_scopes)
